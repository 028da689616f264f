"""What one integration declares about itself: connection types, modules, job types, README text.

Each integration module in ``lytics_provider.integrations`` sets ``INTEGRATION`` to an
:class:`Integration`. Everything here is plain data (dotted paths, no imports of hooks or
operators), so Airflow's providers manager reads it without loading any vendor code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TEXT: dict[str, Any] = {"type": ["string", "null"]}
SECRET: dict[str, Any] = {"type": ["string", "null"], "format": "password"}
LYTICS = "Lytics"


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
    job_types: tuple[JobType, ...] = ()
