"""What one integration declares about itself: connection types, modules, job types, README text.

Each integration is one data file, ``lytics_provider/integrations/<name>.yaml`` (in the manner of
the official providers' ``provider.yaml``), read into an :class:`Integration`. It holds dotted
paths only, so Airflow's providers manager reads it without loading any vendor code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TEXT: dict[str, Any] = {"type": ["string", "null"]}
SECRET: dict[str, Any] = {"type": ["string", "null"], "format": "password"}
LYTICS = "Lytics"


class RegistrationError(ValueError):
    """A declaration file that cannot be read; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class ConnField:
    """One extra field of a connection form (stored in the connection's ``extra``)."""

    label: str
    schema: dict[str, Any] = field(default_factory=lambda: dict(TEXT))
    description: str | None = None

    def spec(self) -> dict[str, Any]:
        """The ``conn-fields`` entry Airflow reads."""
        spec: dict[str, Any] = {"label": self.label}
        if self.description:
            spec["description"] = self.description
        spec["schema"] = dict(self.schema)
        return spec


@dataclass(frozen=True)
class ConnectionType:
    """A connection type of this provider and the form the Airflow UI shows for it.

    :param conn_type: the ``conn_type`` value, equal to the hook's ``conn_type``.
    :param hook_class: dotted path of the hook class.
    :param hook_name: the name shown in the connection type list.
    :param hidden_fields: standard fields the form hides.
    :param relabeling: standard field -> label shown.
    :param placeholders: field -> placeholder text.
    :param fields: extra fields by name.
    :param readme: what the README's connection table says about it.
    """

    conn_type: str
    hook_class: str
    hook_name: str
    hidden_fields: tuple[str, ...]
    relabeling: dict[str, str]
    placeholders: dict[str, str]
    fields: dict[str, ConnField]
    readme: str

    def spec(self) -> dict[str, Any]:
        """The ``connection-types`` entry of ``get_provider_info``."""
        return {
            "hook-class-name": self.hook_class,
            "hook-name": self.hook_name,
            "connection-type": self.conn_type,
            "ui-field-behaviour": {
                "hidden-fields": list(self.hidden_fields),
                "relabeling": dict(self.relabeling),
                "placeholders": dict(self.placeholders),
            },
            "conn-fields": {name: conn_field.spec() for name, conn_field in self.fields.items()},
        }


@dataclass(frozen=True)
class Transfer:
    """A transfer module moving data between two integrations (one of them Lytics)."""

    source: str
    target: str
    module: str


@dataclass(frozen=True)
class JobType:
    """A job type of the integration.

    :param config_class: dotted path of the ``JobConfig`` subclass (its ``type`` literal is the job type).
    :param readme: what the README's job-type table says it does.
    :param examples: example job configs in ``include/jobs`` (file names).
    """

    config_class: str
    readme: str
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class Integration:
    """Everything the provider declares about one integration, in one place.

    :param name: the integration name Airflow shows (``integration-name``).
    :param doc_url: the vendor's documentation.
    :param tags: Airflow integration tags (``service``, ``software``, ...).
    :param listed_by: the official provider that already lists this integration (e.g.
        ``apache-airflow-providers-amazon`` for S3); such integrations are only named by transfers.
    :param connection_types: connection types this provider adds.
    :param airflow_connection_types: connection types of official providers the jobs use.
    :param hooks: hook modules.
    :param operators: operator modules.
    :param transfers: transfer modules.
    :param triggers: trigger modules (deferrable waits).
    :param job_types: job types, in the order the README lists them.
    """

    name: str
    doc_url: str
    tags: tuple[str, ...] = ("service",)
    listed_by: str | None = None
    connection_types: tuple[ConnectionType, ...] = ()
    airflow_connection_types: tuple[str, ...] = ()
    hooks: tuple[str, ...] = ()
    operators: tuple[str, ...] = ()
    transfers: tuple[Transfer, ...] = ()
    triggers: tuple[str, ...] = ()
    job_types: tuple[JobType, ...] = ()


# ------------------------------------------------------------------------------------------------
# Reading a declaration file
# ------------------------------------------------------------------------------------------------


class _Reader:
    """Typed access to one mapping of a declaration file, naming the file and key on any error."""

    def __init__(self, data: Any, where: str, keys: set[str], required: set[str]) -> None:
        if not isinstance(data, Mapping):
            raise RegistrationError(f"{where}: expected a mapping of keys, got {type(data).__name__}")
        unknown = sorted(set(data) - keys)
        if unknown:
            known = ", ".join(sorted(keys))
            raise RegistrationError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {known}")
        missing = sorted(required - set(data))
        if missing:
            raise RegistrationError(f"{where}: required key(s) missing: {', '.join(missing)}")
        self.data = data
        self.where = where

    def text(self, key: str, default: str | None = None) -> Any:
        value = self.data.get(key, default)
        if value is not None and not isinstance(value, str):
            raise RegistrationError(f"{self.where}: {key} must be text, got {value!r}")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise RegistrationError(f"{self.where}: {key} must be a list of text, got {value!r}")
        return tuple(value)

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.data.get(key, {})
        if not isinstance(value, Mapping):
            raise RegistrationError(f"{self.where}: {key} must be a mapping, got {value!r}")
        return dict(value)

    def items(self, key: str) -> list[tuple[str, Any]]:
        value = self.data.get(key, [])
        if not isinstance(value, list):
            raise RegistrationError(f"{self.where}: {key} must be a list, got {value!r}")
        return [(f"{self.where}: {key}[{index}]", item) for index, item in enumerate(value)]


def _conn_field(data: Any, where: str) -> ConnField:
    entry = _Reader(data, where, {"label", "description", "secret", "schema"}, {"label"})
    schema = entry.mapping("schema") or dict(SECRET if entry.data.get("secret") else TEXT)
    types = schema.get("type", [])
    if any(not isinstance(name, str) for name in (types if isinstance(types, list) else [types])):
        raise RegistrationError(f'{where}: schema type names must be text; write "null" in quotes')
    return ConnField(entry.text("label"), schema, entry.text("description"))


def _connection_type(data: Any, where: str) -> ConnectionType:
    keys = {
        "connection-type", "hook-class-name", "hook-name", "hidden-fields",
        "relabeling", "placeholders", "conn-fields", "readme",
    }  # fmt: skip
    entry = _Reader(data, where, keys, {"connection-type", "hook-class-name", "hook-name", "readme"})
    fields = {
        name: _conn_field(value, f"{where}: conn-fields.{name}")
        for name, value in entry.mapping("conn-fields").items()
    }
    return ConnectionType(
        conn_type=entry.text("connection-type"),
        hook_class=entry.text("hook-class-name"),
        hook_name=entry.text("hook-name"),
        hidden_fields=entry.texts("hidden-fields"),
        relabeling=entry.mapping("relabeling"),
        placeholders=entry.mapping("placeholders"),
        fields=fields,
        readme=entry.text("readme"),
    )


def _transfer(data: Any, where: str) -> Transfer:
    entry = _Reader(data, where, {"source", "target", "module"}, {"source", "target", "module"})
    return Transfer(entry.text("source"), entry.text("target"), entry.text("module"))


def _job_type(data: Any, where: str) -> JobType:
    entry = _Reader(data, where, {"config-class", "readme", "examples"}, {"config-class", "readme"})
    return JobType(entry.text("config-class"), entry.text("readme"), entry.texts("examples"))


def integration_from_mapping(data: Any, source: str) -> Integration:
    """An :class:`Integration` from the parsed content of the declaration file ``source``."""
    keys = {
        "name", "doc-url", "tags", "listed-by", "connection-types", "airflow-connection-types",
        "hooks", "operators", "transfers", "triggers", "job-types",
    }  # fmt: skip
    entry = _Reader(data, source, keys, {"name", "doc-url"})
    return Integration(
        name=entry.text("name"),
        doc_url=entry.text("doc-url"),
        tags=entry.texts("tags") or ("service",),
        listed_by=entry.text("listed-by"),
        connection_types=tuple(_connection_type(item, at) for at, item in entry.items("connection-types")),
        airflow_connection_types=entry.texts("airflow-connection-types"),
        hooks=entry.texts("hooks"),
        operators=entry.texts("operators"),
        transfers=tuple(_transfer(item, at) for at, item in entry.items("transfers")),
        triggers=entry.texts("triggers"),
        job_types=tuple(_job_type(item, at) for at, item in entry.items("job-types")),
    )
