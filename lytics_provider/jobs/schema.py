"""The job config union: every registered job type, picked by its ``type`` field, and its JSON Schema.

Job types are read from ``lytics_provider.jobs.types.JOB_TYPES`` each time, so a type added
to the registry appears here (and in the published schema) without any change to this module.
"""

from __future__ import annotations

import json
import typing
from functools import reduce
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from lytics_provider.jobs.base import JobConfig

SCHEMA_FILE = Path(__file__).with_name("job-config.schema.json")


def registered_job_types() -> tuple[type[JobConfig], ...]:
    """The job config classes in the registry."""
    from lytics_provider.jobs.types import JOB_TYPES

    return tuple(JOB_TYPES)


def type_name(cls: type[JobConfig]) -> str:
    """The ``type`` literal of a job config class."""
    field = cls.model_fields.get("type")
    args = typing.get_args(field.annotation) if field is not None else ()
    if len(args) != 1 or not isinstance(args[0], str):
        raise TypeError(f"{cls.__name__}.type must be a Literal with one string, e.g. Literal['my_job']")
    return args[0]


def job_types() -> dict[str, type[JobConfig]]:
    """Job config classes by their ``type`` value, in registry order."""
    types: dict[str, type[JobConfig]] = {}
    for cls in registered_job_types():
        name = type_name(cls)
        if name in types:
            raise TypeError(
                f"job type {name!r} is registered twice: {types[name].__name__} and {cls.__name__}"
            )
        types[name] = cls
    return types


def job_config_union() -> Any:
    """``Annotated[A | B | ..., Field(discriminator="type")]`` over the registered job types."""
    classes = list(job_types().values())
    if not classes:
        raise TypeError("no job types are registered in lytics_provider.jobs.types.JOB_TYPES")
    if len(classes) == 1:
        return classes[0]
    union = reduce(lambda left, right: left | right, classes)
    return Annotated[union, Field(discriminator="type")]


def job_config_adapter() -> TypeAdapter[Any]:
    """A pydantic adapter that validates any job config by its ``type``."""
    return TypeAdapter(job_config_union())


def job_config_json_schema() -> dict[str, Any]:
    """The JSON Schema of a job config file (what editors use for completion and checks)."""
    schema = job_config_adapter().json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Lytics job config",
        "description": (
            "One Lytics integration job, run as an Airflow DAG by dags/lytics_jobs.py. "
            f"Set `type` to one of: {', '.join(job_types())}."
        ),
        **{key: value for key, value in schema.items() if key not in ("title", "description")},
    }


def job_config_json_schema_text() -> str:
    """The schema as the committed file holds it (sorted keys, two-space indent, final newline)."""
    return json.dumps(job_config_json_schema(), indent=2, sort_keys=True) + "\n"
