"""Registry of job types: the ``JobConfig`` subclasses the integrations declare.

``JOB_TYPES`` is read from ``lytics_provider.integrations`` each time it is asked for; a job
type is registered by naming it in its integration's declaration, not by editing this module.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "JOB_TYPES":
        from lytics_provider.integrations.catalog import job_type_classes

        return job_type_classes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
