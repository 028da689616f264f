"""The integrations found in ``lytics_provider.integrations``, and what is generated from them.

An integration is a module of that package setting ``INTEGRATION``; it is found by listing the
package, so adding one edits no central list. From the declarations come ``get_provider_info``,
the connection forms, the job-type registry (and through it the job config JSON Schema) and the
README tables (``lytics-airflow docs``).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import fields, is_dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from lytics_provider.integrations.registration import LYTICS, Integration

if TYPE_CHECKING:
    from lytics_provider.jobs.base import JobConfig

PACKAGE = "lytics_provider.integrations"
#: Modules of the package that are the registration machinery, not integrations.
MACHINERY = frozenset({"catalog", "readme", "registration", "scaffold"})


def integration_modules() -> list[str]:
    """Names of the integration modules, sorted."""
    package = importlib.import_module(PACKAGE)
    return sorted(
        info.name
        for info in pkgutil.iter_modules(package.__path__)
        if not info.ispkg and not info.name.startswith("_") and info.name not in MACHINERY
    )


@cache
def integrations() -> tuple[Integration, ...]:
    """Every declared integration: Lytics first, then by module name."""
    found: list[Integration] = []
    for name in integration_modules():
        module = importlib.import_module(f"{PACKAGE}.{name}")
        declared = getattr(module, "INTEGRATION", None)
        if not isinstance(declared, Integration):
            raise TypeError(
                f"{PACKAGE}.{name} must set INTEGRATION = Integration(...) "
                "(see lytics_provider/integrations/registration.py)"
            )
        found.append(declared)
    names = [item.name for item in found]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise TypeError(f"integration name(s) declared twice: {', '.join(repeated)}")
    return tuple(sorted(found, key=lambda item: item.name != LYTICS))


def connection_specs() -> list[dict[str, Any]]:
    """The ``connection-types`` of ``get_provider_info`` (what the connection forms show)."""
    specs = [conn.spec() for item in integrations() for conn in item.connection_types]
    types = [spec["connection-type"] for spec in specs]
    repeated = sorted({name for name in types if types.count(name) > 1})
    if repeated:
        raise TypeError(f"connection type(s) declared twice: {', '.join(repeated)}")
    return specs


def provider_info_sections() -> dict[str, Any]:
    """``integrations``, ``hooks``, ``operators``, ``transfers`` and ``connection-types``."""
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
