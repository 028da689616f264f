"""The Airflow assets of an audience export: the audience it reads and the destination it writes.

The ``deliver`` task gets the audience as its inlet (``lytics://<audience slug>``) and the
destination as its outlet, so another DAG can be scheduled on a delivery
(``schedule=[Asset("s3://lytics-exports/audiences")]``) and the UI's asset graph shows where
each audience goes. Destinations with a well-known URI form use it (``s3://bucket/prefix``,
``gcs://bucket/prefix``, ``bigquery://project/dataset/table``); the others, whose host lives in an
Airflow connection that is not read while parsing, are
``lytics-destination://<job type>/<connection id>/<target>`` (e.g. the GA4 measurement id or the
SFTP folder).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from airflow.sdk import DAG, Asset

    from lytics_provider.jobs.base import JobConfig

DELIVER_TASK_ID = "deliver"
_NOT_DESTINATION_CONNS = ("lytics_conn_id", "pgp_conn_id")
# Fields naming where, inside the destination account, the audience lands (in this order).
_TARGET_FIELDS = (
    "measurement_id",
    "address_book_name",
    "destination_list",
    "project_id",
    "event_hub",
    "topic",
    "database",
    "dataset",
    "schema_name",
    "table",
    "bucket",
    "directory",
    "folder",
)


def _prefix(bucket: str, directory: str | None) -> str:
    return f"{bucket}/{directory.strip('/')}" if directory and directory.strip("/") else bucket


def _bigquery(config: Any) -> str | None:
    if not config.project:
        return None  # the project is the connection's: named generically
    return f"bigquery://{config.project}/{config.dataset}/{config.table or f'users_{config.audience}'}"


def _redshift(config: Any) -> str:
    table = f"{config.schema_name or 'public'}/{config.table or config.audience}"
    return f"lytics-destination://redshift_export/{config.redshift_conn_id}/{table}"


def _snowflake(config: Any) -> str:
    parts = (
        config.snowflake_conn_id,
        config.database,
        config.schema_name,
        f"USERS_{config.audience}".upper(),
    )
    return "lytics-destination://snowflake_export/" + "/".join(p for p in parts if p)


_KNOWN_URIS: dict[str, Callable[[Any], str | None]] = {
    "s3_export": lambda c: f"s3://{_prefix(c.bucket, c.directory)}",
    "gcs_export": lambda c: f"gcs://{_prefix(c.bucket, c.directory)}",
    "bigquery_export": _bigquery,
    "redshift_export": _redshift,
    "snowflake_export": _snowflake,
}


def audience_uris(config: JobConfig) -> list[str]:
    """``lytics://<slug>`` for the job's audience (and each of its ``audiences``)."""
    slugs = [getattr(config, "audience", None), *(getattr(config, "audiences", None) or [])]
    return [f"lytics://{quote(str(slug), safe='')}" for slug in dict.fromkeys(slugs) if slug]


def destination_uri(config: JobConfig) -> str:
    """Where the job delivers, as an asset URI (see the module docstring)."""
    known = _KNOWN_URIS.get(config.type)
    uri = known(config) if known else None
    if uri:
        return uri
    fields = type(config).model_fields
    conn = next(
        (
            getattr(config, name)
            for name in fields
            if name.endswith("_conn_id") and name not in _NOT_DESTINATION_CONNS and getattr(config, name)
        ),
        None,
    )
    parts = [conn, *(getattr(config, name, None) for name in _TARGET_FIELDS if name in fields)]
    path = "/".join(quote(str(part).strip("/"), safe="") for part in parts if part not in (None, ""))
    return f"lytics-destination://{config.type}/{path}".rstrip("/")


def job_assets(config: JobConfig) -> tuple[list[Asset], list[Asset]]:
    """The deliver task's inlets (the audiences) and outlets (the destination)."""
    from airflow.sdk import Asset

    return [Asset(uri) for uri in audience_uris(config)], [Asset(destination_uri(config))]


def declare_assets(dag: DAG, config: JobConfig) -> None:
    """Give the DAG's ``deliver`` task its inlets and outlets (a DAG without one is left alone)."""
    if DELIVER_TASK_ID not in dag.task_ids or not audience_uris(config):
        return
    inlets, outlets = job_assets(config)
    task = dag.get_task(DELIVER_TASK_ID)
    task.inlets = [*task.inlets, *inlets]
    task.outlets = [*task.outlets, *outlets]
