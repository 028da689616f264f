"""Export Audiences (users) and Activity Data to BigQuery: stage on GCS, load with a load job.

Audience export (one pass over the snapshot, bounded memory):

* **Export Scalar Fields** → table ``{table}`` (default ``users_{slug}``): one row per user, an
  ``id`` column and one typed column per scalar field;
* **Export Non-Scalar Fields** → one table per list/map field, ``{table}_{field}``, with
  ``(id, value)`` rows for lists and sets and ``(id, key, value)`` rows for maps, joined to the
  user table by ``id`` — a hash of the user's identifier fields (not a Lytics id; it can change
  between exports, as in the Lytics export).

Names are sanitised for BigQuery; a collision gets an integer suffix (``first_name1``). Each
table is loaded from its staged CSV on GCS by a load job with ``WRITE_TRUNCATE``, which replaces
the table atomically: readers see the previous export until the job commits. Job ids depend only
on the job, table and run, so a retried task reattaches to its load job instead of loading twice;
with ``deferrable`` the wait for the load jobs runs in the triggerer (see ``pipeline.bigquery_loads``).

Activity Data: the events of a stream that earlier runs did not load, appended to
``events_{stream}`` (the first run loads them all, replacing the table); the stream position is
committed once the load job succeeded (see :class:`LyticsStreamToBigQueryOperator`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.configuration import conf
from airflow.sdk import BaseOperator, Context

from lytics_provider.files.export_naming import run_stamp
from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.hooks.permanent_errors import FailFastOnPermanentErrors
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.audience_export import AudienceExportOperator
from lytics_provider.operators.lytics import run_param
from lytics_provider.operators.stream_position import NewStreamEvents
from lytics_provider.pipeline.bigquery_loads import DEFAULT_POLL_INTERVAL, BigQueryLoadJobs, LoadSpec
from lytics_provider.pipeline.compression import compress_to
from lytics_provider.pipeline.object_files import join_key
from lytics_provider.pipeline.warehouse_types import (
    CellError,
    Column,
    plan_columns,
    row_cells,
    sanitize_name,
    to_cell,
    unique_names,
)
from lytics_provider.pipeline.writers import CsvWriter

PENDING_LOAD_KEY = "pending_load"
if TYPE_CHECKING:
    from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook

BQ_TYPES = {"string": "STRING", "int": "INT64", "number": "FLOAT64", "bool": "BOOL", "timestamp": "TIMESTAMP"}


def user_id(record: Mapping[str, Any], identifiers: Sequence[str]) -> str:
    """The join id of a user: a hash of its identifier fields."""
    subject = {name: record.get(name) for name in identifiers}
    encoded = json.dumps(subject, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]


def _element_kind(lytics_type: str) -> str:
    inner = lytics_type.split("]", 1)[-1] if lytics_type.startswith(("[]", "ts[")) else lytics_type
    if lytics_type.startswith("map["):
        inner = lytics_type.split("]", 1)[1]
    return {"int": "int", "number": "number", "float": "number", "bool": "bool", "time": "timestamp"}.get(
        inner.strip(), "string"
    )


class _Table:
    """One staged CSV table: its name, BigQuery schema and writer."""

    def __init__(self, name: str, schema: list[dict[str, str]], path: Path, stack: ExitStack) -> None:
        self.name = name
        self.schema = schema
        self.path = path
        raw = stack.enter_context(open(path, "wb"))  # noqa: SIM115 - closed by the caller's ExitStack
        stream = stack.enter_context(compress_to(raw, "gz", path.name))
        self.writer = stack.enter_context(CsvWriter(stream, [f["name"] for f in schema]))


class LyticsToBigQueryOperator(BigQueryLoadJobs, AudienceExportOperator):
    """Export Audiences to ``{project}.{dataset}`` via ``gs://{gcs_bucket}/{gcs_directory}``.

    :param dataset: BigQuery dataset (created if missing).
    :param gcs_bucket: bucket for the staged files.
    :param project: BigQuery project (default: the connection's).
    :param table: user table (default ``users_{slug}``).
    :param gcs_directory: prefix of the staged files.
    :param export_scalar_fields: Export Scalar Fields (the user table).
    :param export_non_scalar_fields: Export Non-Scalar Fields (one table per list/map field).
    :param location: BigQuery location.
    :param gcp_conn_id: Google Cloud connection.
    :param keep_staged: keep the staged files on GCS after the loads.
    :param deferrable: wait for the load jobs in the triggerer, freeing the worker slot; default
        from ``[operators] default_deferrable``.
    :param poll_interval: seconds between load job status polls.
    """

    template_fields: Sequence[str] = ("fields", "dataset", "table", "gcs_bucket")

    def __init__(
        self,
        *,
        dataset: str,
        gcs_bucket: str,
        project: str | None = None,
        table: str | None = None,
        gcs_directory: str = "lytics",
        export_scalar_fields: bool = True,
        export_non_scalar_fields: bool = True,
        location: str | None = None,
        gcp_conn_id: str = "google_cloud_default",
        keep_staged: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        if not (export_scalar_fields or export_non_scalar_fields):
            raise ValueError(
                "nothing to export: set export_scalar_fields or export_non_scalar_fields to true"
            )

    def base_table(self) -> str:
        """``users_{slug}`` (or the configured table), sanitised."""
        return sanitize_name(self.table or f"users_{self.slug}", "bigquery")

    def _layout(self) -> tuple[list[Column], list[Column], list[str]]:
        schema = self.schema_fields()
        columns = plan_columns(schema, self.fields, "bigquery")
        scalars = [c for c in columns if c.kind != "json"] if self.export_scalar_fields else []
        nested = [c for c in columns if c.kind == "json"] if self.export_non_scalar_fields else []
        identifiers = [str(f["id"]) for f in schema if f.get("is_identifier")] or ["_uid"]
        return scalars, nested, identifiers

    def _table_names(self, scalars: list[Column], nested: list[Column]) -> list[str]:
        base = self.base_table()
        names = ([base] if scalars else []) + [f"{base}_{c.field}" for c in nested]
        return unique_names(names, "bigquery")

    def plan(self, context: Context) -> dict[str, Any]:
        scalars, nested, _ = self._layout()
        return {"dataset": self.dataset, "tables": self._table_names(scalars, nested)}

    def deliver(self, context: Context) -> dict[str, Any]:
        scalars, nested, identifiers = self._layout()
        names = self._table_names(scalars, nested)
        staged_dir = self.work_dir / "staged"
        staged_dir.mkdir(parents=True, exist_ok=True)
        id_columns = unique_names(["id", *(c.name for c in scalars)], "bigquery")
        with ExitStack() as stack, self.rejects() as rejects:
            tables: list[_Table] = []
            if scalars:
                schema = [{"name": id_columns[0], "type": "STRING", "mode": "REQUIRED"}] + [
                    {"name": n, "type": BQ_TYPES[c.kind], "mode": "NULLABLE"}
                    for n, c in zip(id_columns[1:], scalars, strict=True)
                ]
                tables.append(_Table(names[0], schema, staged_dir / f"{names[0]}.csv.gz", stack))
            for name, column in zip(names[-len(nested) :] if nested else [], nested, strict=True):
                kind = _element_kind(column.lytics_type)
                cols = [{"name": "id", "type": "STRING", "mode": "REQUIRED"}]
                if column.lytics_type.startswith("map["):
                    cols.append({"name": "key", "type": "STRING", "mode": "REQUIRED"})
                cols.append({"name": "value", "type": BQ_TYPES[kind], "mode": "NULLABLE"})
                tables.append(_Table(name, cols, staged_dir / f"{name}.csv.gz", stack))
            rows, rejected = self._write(tables, scalars, nested, identifiers, rejects)
        loads = self._start_loads(tables, context)
        report = {"audience": self.audience, "members": self.members, "dry_run": False}
        loaded = {table.name: table.writer.rows for table in tables}
        report.update(dataset=self.dataset, tables=loaded, rows=rows, rejected=rejected)
        return self.wait_for_loads(context, loads, report)

    def _write(
        self,
        tables: list[_Table],
        scalars: list[Column],
        nested: list[Column],
        identifiers: list[str],
        rejects: Any,
    ) -> tuple[int, int]:
        rows = rejected = 0
        offset = 1 if scalars else 0
        for number, record in enumerate(self.records(), start=1):
            uid = user_id(record, identifiers)
            try:
                main = [uid, *row_cells(record, scalars)] if scalars else None
                children = [list(self._child_rows(uid, record.get(c.field), c)) for c in nested]
            except CellError as exc:
                rejects.reject(str(exc), number, record, record.get("_uid"))
                rejected += 1
                continue
            if main is not None:
                tables[0].writer.write_cells(main)
            for table, child_rows in zip(tables[offset:], children, strict=True):
                for cells in child_rows:
                    table.writer.write_cells(cells)
            rows += 1
        return rows, rejected

    @staticmethod
    def _child_rows(uid: str, value: Any, column: Column) -> Iterator[list[Any]]:
        if value in (None, "", [], {}):
            return
        kind = _element_kind(column.lytics_type)
        try:
            if isinstance(value, Mapping):
                for key, item in value.items():
                    yield [uid, str(key), to_cell(item, kind)]  # type: ignore[arg-type]
            elif isinstance(value, (list, tuple, set, frozenset)):
                for item in value:
                    yield [uid, to_cell(item, kind)]  # type: ignore[arg-type]
            else:
                yield [uid, to_cell(value, kind)]  # type: ignore[arg-type]
        except CellError as exc:
            raise CellError(f"field {column.field!r} ({column.lytics_type}): {exc}") from None

    def _start_loads(self, tables: list[_Table], context: Context) -> list[dict[str, Any]]:
        """Stage each table on GCS and start its load job, or reattach to an earlier try's job."""
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        hook = self.bigquery_hook()
        self.ensure_dataset(hook)
        gcs = GCSHook(gcp_conn_id=self.gcp_conn_id)
        try_number = int(getattr(context.get("ti"), "try_number", 1) or 1)
        loads: list[dict[str, Any]] = []
        for table in tables:
            key = join_key(self.gcs_directory, f"{self.job_id}/{self.stamp}/{table.path.name}")
            uri = f"gs://{self.gcs_bucket}/{key}"
            spec = LoadSpec(
                table.name, [uri], "CSV", table.schema, f"{self.job_id}_{table.name}_{self.stamp}"
            )
            job_id, earlier = self.existing_load(hook, spec, try_number)
            if earlier is None:
                gcs.upload(self.gcs_bucket, key, filename=str(table.path), chunk_size=16 * 1024 * 1024)
                self.start_load(hook, spec, job_id)
            loads.append({"job_id": job_id, "table": table.name, "staged": [] if self.keep_staged else [uri]})
            table.path.unlink()
        return loads


class LyticsStreamToBigQueryOperator(
    NewStreamEvents, BigQueryLoadJobs, FailFastOnPermanentErrors, BaseOperator
):
    """Export Activity Data: the events of a Lytics stream that earlier runs did not load, appended to
    ``{dataset}.{table}``.

    Events are staged as JSON lines on GCS and loaded with schema auto-detection (new fields add
    columns). The first run loads every event with ``WRITE_TRUNCATE`` (the table holds exactly what
    was exported); later runs append the new events with ``WRITE_APPEND``. The load job's id depends
    on the job, table and run, and the window it loads is saved in the job state before the job
    starts: a retry, or the next run, finishes that load (reattaching to it) instead of appending
    the window again, and the stream position is committed only once the load job succeeded. A run
    without new events loads nothing.

    :param job_id: the job (names the run directory, the job state and the load job).
    :param stream: the Lytics stream.
    :param dataset: BigQuery dataset (created if missing).
    :param gcs_bucket: bucket for the staged file.
    :param project: BigQuery project (default: the connection's).
    :param table: table (default ``events_{stream}``).
    :param gcs_directory: prefix of the staged file.
    :param location: BigQuery location.
    :param gcp_conn_id: Google Cloud connection.
    :param lytics_conn_id: Lytics connection.
    :param deferrable: wait for the load job in the triggerer, freeing the worker slot; default
        from ``[operators] default_deferrable``.
    :param poll_interval: seconds between load job status polls.
    """

    template_fields: Sequence[str] = ("stream", "dataset", "table")

    def __init__(
        self,
        *,
        job_id: str,
        stream: str,
        dataset: str,
        gcs_bucket: str,
        project: str | None = None,
        table: str | None = None,
        gcs_directory: str = "lytics",
        location: str | None = None,
        gcp_conn_id: str = "google_cloud_default",
        lytics_conn_id: str = LyticsHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        table = sanitize_name(self.table or f"events_{self.stream}", "bigquery")
        after = self.committed_position()
        report: dict[str, Any] = {
            "stream": self.stream,
            "table": f"{self.dataset}.{table}",
            "since_position": after.as_state() if after else None,
            "dry_run": run_param(context, "dry_run"),
        }
        if report["dry_run"]:
            new = self.download_new(context, after)
            new.path.unlink()
            return {**report, "rows": new.count}
        hook = self.bigquery_hook()
        pending = self.events_state().get(PENDING_LOAD_KEY)
        if pending and self._load_alive(hook, pending["load"]):
            self.log.info(
                "Finishing load job %s, started by an earlier try or run", pending["load"]["job_id"]
            )
            resumed = {**report, "rows": pending["rows"], "position": pending["position"]}
            return self.wait_for_loads(context, [pending["load"]], resumed)
        stamp = run_stamp(context)
        spec = LoadSpec(table, [], "NEWLINE_DELIMITED_JSON", None, f"{self.job_id}_{table}_{stamp}")
        try_number = int(getattr(context.get("ti"), "try_number", 1) or 1)
        job_id, earlier = self.existing_load(hook, spec, try_number)
        if earlier is not None:
            self.log.info("Load job %s of this run succeeded and was committed: nothing to load", job_id)
            return {**report, "rows": 0}
        new = self.download_new(context, after)
        if not new.count or new.position is None:
            new.path.unlink()
            self.log.info("No new events in stream %r: nothing to load", self.stream)
            return {**report, "rows": 0}
        key = join_key(self.gcs_directory, f"{self.job_id}/{stamp}/{new.path.name}")
        uri = f"gs://{self.gcs_bucket}/{key}"
        spec = replace(
            spec, source_uris=[uri], write_disposition="WRITE_APPEND" if after else "WRITE_TRUNCATE"
        )
        self.ensure_dataset(hook)
        GCSHook(gcp_conn_id=self.gcp_conn_id).upload(
            self.gcs_bucket, key, filename=str(new.path), chunk_size=16 * 1024 * 1024
        )
        new.path.unlink()
        load = {"job_id": job_id, "table": table, "staged": [uri]}
        report.update(rows=new.count, position=new.position.as_state())
        self.events_state().update(
            **{PENDING_LOAD_KEY: {"load": load, "rows": new.count, "position": report["position"]}}
        )
        self.start_load(hook, spec, job_id)
        return self.wait_for_loads(context, [load], report)

    def wait_for_loads(
        self, context: Context, loads: list[dict[str, Any]], result: dict[str, Any]
    ) -> dict[str, Any]:
        """Wait for the load job, then commit the stream position it loaded up to."""
        done = super().wait_for_loads(context, loads, result)
        if done.get("position"):
            self.commit_position(done["position"], **{PENDING_LOAD_KEY: None})
        return done

    def _load_alive(self, hook: BigQueryHook, load: dict[str, Any]) -> bool:
        """Whether the pending load job is running or succeeded; a lost or failed one is forgotten."""
        from google.api_core.exceptions import NotFound

        try:
            job = hook.get_job(job_id=load["job_id"], project_id=self._project(hook), location=self.location)
        except NotFound:
            job = None
        if job is not None and not (job.state == "DONE" and job.error_result):
            return True
        self.log.info(
            "Load job %s loaded nothing (%s): the events are loaded again",
            load["job_id"],
            job.error_result if job is not None else "not found",
        )
        self._remove_staged([load])
        self.events_state().update(**{PENDING_LOAD_KEY: None})
        return False
