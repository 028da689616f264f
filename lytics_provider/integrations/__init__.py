"""Integrations, one declaration file each (``<name>.yaml``): connection types, modules, job types.

See :mod:`lytics_provider.integrations.registration` for what a declaration holds and
:mod:`lytics_provider.integrations.catalog` for what is generated from it.
"""
