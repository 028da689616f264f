"""Pass a job config's options to an operator by name: config field names equal operator arguments.

``operator_kwargs(config, Operator, task_id="deliver", ...)`` takes every config field that the
operator's own constructor (or a constructor of its provider base classes) accepts, so an option
is spelled once, in the config, and reaches the operator without a line of pass-through.
``keep_arguments(self, locals())`` is the operator's side: its arguments become its attributes.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from functools import cache
from typing import Any

from pydantic import BaseModel

_ARGUMENT_KINDS = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_NOT_ARGUMENTS = frozenset({"self", "kwargs", "__class__"})


@cache
def operator_arguments(operator: type) -> frozenset[str]:
    """Keyword arguments declared by ``operator`` and its bases in this package (not Airflow's)."""
    names: set[str] = set()
    for cls in operator.__mro__:
        if not cls.__module__.startswith("lytics_provider.") or "__init__" not in vars(cls):
            continue
        parameters = inspect.signature(cls.__init__).parameters.values()
        names.update(p.name for p in parameters if p.kind in _ARGUMENT_KINDS and p.name != "self")
    return frozenset(names)


def operator_kwargs(config: BaseModel, operator: type, **arguments: Any) -> dict[str, Any]:
    """The config fields ``operator`` accepts, plus ``arguments`` (which win over config fields).

    :param config: a validated job config.
    :param operator: the operator class the arguments are for.
    :param arguments: arguments that do not come from a config field of the same name
        (``task_id``, ``job_id``, values computed from several fields).
    """
    accepted = operator_arguments(operator)
    kwargs = {
        name: _plain(getattr(config, name))
        for name in type(config).model_fields
        if name in accepted and name not in arguments
    }
    kwargs.update(arguments)
    return kwargs


def _plain(value: Any) -> Any:
    """Frozen config values as the operators take them (a plain dict for a mapping)."""
    return dict(value) if isinstance(value, dict) else value


def keep_arguments(operator: object, arguments: Mapping[str, Any]) -> None:
    """Set each argument of an operator's ``__init__`` as the operator's attribute of that name.

    Call it with ``locals()`` right after ``super().__init__(**kwargs)``, before any other local
    name is bound; ``self``, ``kwargs`` and ``__class__`` are passed over. An argument that is kept
    converted (``list(fields)``, a default filled in) is set again after the call.

    :param operator: the operator being built.
    :param arguments: the ``__init__``'s ``locals()``.
    """
    for name, value in arguments.items():
        if name not in _NOT_ARGUMENTS:
            setattr(operator, name, value)
