"""The integrations declared in ``lytics_provider/integrations/*.yaml``, and what is generated from them.

An integration is one YAML file in that package; the files are found by listing the package, so
adding one edits no central list. From the declarations come ``get_provider_info``, the
connection forms, the job-type registry (and through it the job config JSON Schema) and the
README tables (``lytics-airflow docs``).
"""

from __future__ import annotations

import importlib
from dataclasses import fields, is_dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lytics_provider.integrations.registration import (
    LYTICS,
    Integration,
    RegistrationError,
    integration_from_mapping,
)

if TYPE_CHECKING:
    from lytics_provider.jobs.base import JobConfig

PACKAGE = "lytics_provider.integrations"


def integration_files() -> list[Path]:
    """The declaration files, sorted by name."""
    package = importlib.import_module(PACKAGE)
    found = {path.name: path for folder in package.__path__ for path in Path(folder).glob("*.yaml")}
    return [found[name] for name in sorted(found)]


def read_integration(path: Path) -> Integration:
    """The integration declared in ``path``; a :class:`RegistrationError` names what is wrong."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RegistrationError(f"{path.name}: not valid YAML: {exc}") from None
    return integration_from_mapping(data, path.name)


@cache
def integrations() -> tuple[Integration, ...]:
    """Every declared integration: Lytics first, then by file name."""
    found = [read_integration(path) for path in integration_files()]
    names = [item.name for item in found]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise RegistrationError(f"integration name(s) declared twice: {', '.join(repeated)}")
    return tuple(sorted(found, key=lambda item: item.name != LYTICS))


def connection_specs() -> list[dict[str, Any]]:
    """The ``connection-types`` of ``get_provider_info`` (what the connection forms show)."""
    specs = [conn.spec() for item in integrations() for conn in item.connection_types]
    types = [spec["connection-type"] for spec in specs]
    repeated = sorted({name for name in types if types.count(name) > 1})
    if repeated:
        raise RegistrationError(f"connection type(s) declared twice: {', '.join(repeated)}")
    return specs


def provider_info_sections() -> dict[str, Any]:
    """``integrations``, ``hooks``, ``operators``, ``transfers``, ``triggers`` and ``connection-types``."""
    items = integrations()
    return {
        "integrations": [
            {"integration-name": item.name, "external-doc-url": item.doc_url, "tags": list(item.tags)}
            for item in items
            if item.listed_by is None
        ],
        "hooks": [
            {"integration-name": item.name, "python-modules": list(item.hooks)}
            for item in items
            if item.hooks
        ],
        "operators": [
            {"integration-name": item.name, "python-modules": list(item.operators)}
            for item in items
            if item.operators
        ],
        "transfers": [
            {
                "source-integration-name": transfer.source,
                "target-integration-name": transfer.target,
                "python-module": transfer.module,
            }
            for item in items
            for transfer in item.transfers
        ],
        "triggers": [
            {"integration-name": item.name, "python-modules": list(item.triggers)}
            for item in items
            if item.triggers
        ],
        "connection-types": connection_specs(),
    }


def import_object(path: str) -> Any:
    """The object a dotted path ``package.module.Name`` names."""
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"cannot import {path!r} declared by an integration: {exc}") from exc


def job_type_classes() -> tuple[type[JobConfig], ...]:
    """The job config classes every integration declares, in declaration order."""
    return tuple(import_object(job.config_class) for item in integrations() for job in item.job_types)


def todo_entries(value: Any, where: str = "") -> list[str]:
    """Where a declaration still holds a ``TODO`` (paths like ``job_types[0].readme``)."""
    if isinstance(value, str):
        return [where or "value"] if "TODO" in value else []
    if is_dataclass(value):
        return [
            entry
            for item in fields(value)
            for entry in todo_entries(getattr(value, item.name), f"{where}.{item.name}".lstrip("."))
        ]
    if isinstance(value, dict):
        return [entry for key, item in value.items() for entry in todo_entries(item, f"{where}[{key!r}]")]
    if isinstance(value, (tuple, list)):
        return [
            entry for index, item in enumerate(value) for entry in todo_entries(item, f"{where}[{index}]")
        ]
    return []
