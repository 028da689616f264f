"""Import a warehouse table or view into a Lytics stream, oldest row first, with a watermark.

Works over Snowflake (``SnowflakeHook``), BigQuery (``BigQueryHook``), Databricks (the SQL Statement
Execution API through ``DatabricksStatementHook``, result chunks converted by their column types)
and Redshift through its PostgreSQL connection (``PostgresHook``/``RedshiftSQLHook``; default
stream ``redshift_{table}``).

Each run selects the rows whose **Modified Timestamp Field** is at or after the saved watermark
(or **Events Since** on the first run), ordered by that field, and streams them with a
server-side cursor (``fetchmany``; BigQuery pages) in batches of ``batch_size``. After Lytics
acknowledged a batch, the watermark is committed (:class:`~lytics_provider.files.ingest.StreamWriter`
and a state checkpoint): the batch's last timestamp plus the keys of the rows carrying exactly
that timestamp.

Rows with equal timestamps at a batch (or run) boundary: the query uses ``>=`` the watermark,
and a row whose timestamp equals the watermark is skipped only when its key is among the keys
saved with it. So a row that arrives later with the same timestamp is still imported, and a
retried batch is not sent twice. The key is ``key_fields`` when given, else a digest of the
whole row. Rows without a modified timestamp cannot be ordered; they are counted and reported
(never silently dropped), and not imported.

A table without a modified-timestamp column is imported with ``full_reload``: each run reads the
whole table (ordered by ``key_fields`` when given) and sends only the rows that are new or changed
since the last delivery, by a digest per row kept in the job's
:class:`~lytics_provider.pipeline.row_digests.RowDigestStore`. A row's key is a digest of its
``key_fields`` (a changed row replaces its earlier version), else of the whole row. Digests are
saved per batch after Lytics acknowledged it; keys of rows no longer in the table are forgotten
once a run has read the whole table.
"""

from __future__ import annotations

import base64
import itertools
import re
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Literal

from airflow.sdk import BaseOperator, Context

from lytics_provider.files.ingest import StateCheckpoint, StreamWriter
from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.lytics import run_param
from lytics_provider.pipeline.db_url import parse_db_url, sql_connection
from lytics_provider.pipeline.progress import Progress
from lytics_provider.pipeline.retention import prune_job_runs
from lytics_provider.pipeline.row_digests import RowDigestStore
from lytics_provider.pipeline.snapshot import record_digest
from lytics_provider.pipeline.timestamps import parse_rfc3339

Dialect = Literal["postgres", "snowflake", "bigquery", "databricks"]
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]*(\.[A-Za-z_][A-Za-z0-9_$-]*){0,2}$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
WATERMARK_KEY = "watermark"


def check_name(value: str, what: str, pattern: re.Pattern[str] = _NAME) -> str:
    """Refuse a table/field name that is not a plain (optionally dotted) identifier."""
    if not pattern.match(value or ""):
        raise ValueError(
            f"{what} {value!r} is not a valid name: use letters, digits and _ "
            + ("(database.schema.table allowed)" if pattern is _NAME else "")
        )
    return value


def jsonable(value: Any) -> Any:
    """A value Lytics can take in JSON: timestamps as RFC 3339, decimals as numbers, bytes as base64."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def _ts_text(value: Any) -> str:
    return value.isoformat() if isinstance(value, (datetime, date)) else str(value)


class SqlTableToLyticsOperator(BaseOperator):
    """Import Table / Import Audiences and Activity Data from a warehouse table or view.

    :param source: table or view (``schema.table`` or ``database.schema.table`` allowed).
    :param modified_timestamp_field: Modified Timestamp Field (ordering and watermark); not with
        ``full_reload``.
    :param full_reload: read the whole table each run and send only new or changed rows (for a
        table without a modified-timestamp column).
    :param stream: Lytics stream; default ``redshift_{table}`` for PostgreSQL/Redshift.
    :param event_timestamp_field: Event Timestamp Field; default the modified field.
    :param events_since: Events Since (RFC 3339), the earliest timestamp of the first run.
    :param key_fields: fields identifying a row, for the equal-timestamp tiebreak (default: whole row).
    :param dialect: ``postgres`` (Redshift too), ``snowflake``, ``bigquery`` or ``databricks``.
    :param db_url: DB URL ``host[:port][/database]`` replacing the connection's (``postgres`` only);
        the user and password stay on the connection.
    """

    template_fields: Sequence[str] = ("source", "stream", "events_since")

    def __init__(
        self,
        *,
        job_id: str,
        source: str,
        conn_id: str,
        modified_timestamp_field: str | None = None,
        full_reload: bool = False,
        dialect: Dialect = "postgres",
        stream: str | None = None,
        event_timestamp_field: str | None = None,
        events_since: str | None = None,
        key_fields: Sequence[str] | None = None,
        batch_size: int = 5000,
        lytics_conn_id: str = LyticsHook.default_conn_name,
        location: str | None = None,
        db_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        if dialect not in ("postgres", "snowflake", "bigquery", "databricks"):
            raise ValueError(
                f"dialect {dialect!r} is not supported; use postgres, snowflake, bigquery or databricks"
            )
        if full_reload == bool(modified_timestamp_field):
            raise ValueError(
                "set either modified_timestamp_field (a watermark import) or full_reload=True "
                "(for a table without a modified-timestamp column), not both"
                if full_reload
                else "modified_timestamp_field is missing: name the table's modified-timestamp column, "
                "or set full_reload=True for a table without one"
            )
        if db_url is not None:
            if dialect != "postgres":
                raise ValueError(f"db_url is for Redshift/PostgreSQL connections, not {dialect}; remove it")
            parse_db_url(db_url)
        if modified_timestamp_field:
            check_name(modified_timestamp_field, "modified_timestamp_field", _FIELD)
        table = source.rsplit(".", 1)[-1].lower()
        if stream is None and dialect != "postgres":
            raise ValueError("stream is required: name the Lytics stream to import into")
        self.stream = stream or f"redshift_{table}"
        self.event_timestamp_field = event_timestamp_field or modified_timestamp_field
        self.key_fields = list(key_fields) if key_fields else None

    # -- SQL -----------------------------------------------------------------------------------
    def _table_ref(self) -> str:
        check_name(self.source, "source")
        return f"`{self.source}`" if self.dialect == "bigquery" else self.source

    def select_sql(self, since: datetime | None) -> str:
        """The ordered query (``%s``/``@since`` placeholder for the lower bound); with
        ``full_reload`` the whole table, ordered by ``key_fields`` when given."""
        keys = [check_name(k, "key_fields", _FIELD) for k in self.key_fields or ()]
        if self.full_reload:
            return f"SELECT * FROM {self._table_ref()}" + (f" ORDER BY {', '.join(keys)}" if keys else "")
        field = self.modified_timestamp_field
        where = f"{field} IS NOT NULL"
        if since is not None:
            marker = {"bigquery": "@since", "databricks": ":since"}.get(self.dialect, "%s")
            where = f"{field} >= {marker}"
        order = ", ".join([field, *keys])
        return f"SELECT * FROM {self._table_ref()} WHERE {where} ORDER BY {order}"

    def _rows(self, since: datetime | None) -> Iterator[list[dict[str, Any]]]:
        """Batches of rows as dicts, streamed from the warehouse."""
        sql = self.select_sql(since)
        if self.dialect == "bigquery":
            yield from self._bigquery_rows(sql, since)
            return
        if self.dialect == "databricks":
            yield from self._databricks_rows(sql, since)
            return
        conn = sql_connection(self.conn_id, self.db_url)
        try:
            if self.dialect == "postgres":
                conn.autocommit = False
                try:  # a server-side cursor: rows arrive batch by batch
                    cur = conn.cursor(name="lytics_import")
                except TypeError:  # redshift_connector has no named cursors
                    cur = conn.cursor()
            else:
                cur = conn.cursor()
            cur.execute(sql, (since,) if since is not None else None)
            names: list[str] | None = None
            while True:
                rows = cur.fetchmany(self.batch_size)
                if names is None:
                    names = [d[0] for d in cur.description]
                if not rows:
                    break
                yield [dict(zip(names, row, strict=True)) for row in rows]
            cur.close()
        finally:
            conn.close()

    def _bigquery_rows(self, sql: str, since: datetime | None) -> Iterator[list[dict[str, Any]]]:
        from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook
        from google.cloud import bigquery

        hook = BigQueryHook(gcp_conn_id=self.conn_id, use_legacy_sql=False)
        client = hook.get_client(project_id=hook.project_id, location=self.location)
        params = [bigquery.ScalarQueryParameter("since", "TIMESTAMP", since)] if since is not None else []
        job = client.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=params))
        for page in job.result(page_size=self.batch_size).pages:
            yield [dict(row.items()) for row in page]

    def _databricks_rows(self, sql: str, since: datetime | None) -> Iterator[list[dict[str, Any]]]:
        from lytics_provider.pipeline.databricks_rows import databricks_batches

        yield from databricks_batches(self.conn_id, sql, since, self.batch_size)

    def _count_missing_timestamps(self) -> int | None:
        if self.dialect == "bigquery":
            return None
        if self.dialect == "databricks":
            from lytics_provider.hooks.databricks import DatabricksStatementHook

            field = self.modified_timestamp_field
            sql = f"SELECT count(*) FROM {self._table_ref()} WHERE {field} IS NULL"
            return int(DatabricksStatementHook(self.conn_id).scalar(sql) or 0)
        conn = sql_connection(self.conn_id, self.db_url)
        try:
            cur = conn.cursor()
            field = self.modified_timestamp_field
            cur.execute(f"SELECT count(*) FROM {self._table_ref()} WHERE {field} IS NULL")
            return int(cur.fetchone()[0])
        finally:
            conn.close()

    # -- run -----------------------------------------------------------------------------------
    def out_name(self, name: str) -> str:
        """The field name sent to Lytics: Snowflake's upper-case column names in lower case."""
        return name.lower() if self.dialect == "snowflake" and name.isupper() else name

    def key_of(self, row: dict[str, Any]) -> str:
        """The key of a row (hex): a digest of ``key_fields``, else of the whole row."""
        return record_digest(row, self.key_fields).hex()

    def _writer(self, hook: LyticsHook, on_ack: Any, dry_run: bool) -> StreamWriter:
        timestamp_field = self.event_timestamp_field
        return StreamWriter(
            hook,
            self.stream,
            timestamp_field=self.out_name(timestamp_field) if timestamp_field else None,
            on_ack=on_ack,
            send=not dry_run,
        )

    def _finish(self, report: dict[str, Any], hook: LyticsHook, context: Context) -> dict[str, Any]:
        report["api_calls"] = hook.calls
        self.log.info("Import done: %s", report)
        if not report["dry_run"]:
            prune_job_runs(self.job_id, context["run_id"])
        return report

    def execute(self, context: Context) -> dict[str, Any]:
        if self.full_reload:
            return self._execute_full_reload(context)
        checkpoint = StateCheckpoint(self.job_id, WATERMARK_KEY)
        saved = checkpoint.load() or {}
        since = datetime.fromisoformat(saved["ts"]) if saved.get("ts") else parse_rfc3339(self.events_since)
        seen: set[str] = set(saved.get("keys") or []) if saved.get("ts") else set()
        dry_run = run_param(context, "dry_run")
        missing = self._count_missing_timestamps()
        if missing:
            self.log.warning(
                "%d rows of %s have no %s and cannot be imported in order; fill the field to import them",
                missing,
                self.source,
                self.modified_timestamp_field,
            )
        self.log.info(
            "Importing %s into stream %r from %s", self.source, self.stream, since or "the beginning"
        )
        hook = LyticsHook(self.lytics_conn_id)
        writer = self._writer(hook, checkpoint.save, dry_run)
        progress = Progress(self.log, f"rows imported from {self.source}")
        skipped = 0
        mark_ts: Any = since
        mark_keys = set(seen)
        for batch in self._rows(since):
            batch_ts, batch_keys = mark_ts, set(mark_keys)
            queued = writer.records
            for row in batch:
                ts = row.get(self.modified_timestamp_field)
                key = self.key_of(row)
                if since is not None and ts == since and key in seen:
                    skipped += 1
                    continue
                writer.add({self.out_name(k): jsonable(v) for k, v in row.items()})
                if ts != batch_ts:
                    batch_ts, batch_keys = ts, set()
                batch_keys.add(key)
            if writer.records == queued:
                continue
            writer.flush({"ts": _ts_text(batch_ts), "keys": sorted(batch_keys)})
            mark_ts, mark_keys = batch_ts, batch_keys
            progress.advance(writer.records - queued)
        progress.finish()
        report = {
            "source": self.source,
            "stream": self.stream,
            "rows": writer.records,
            "already_imported": skipped,
            "rejected_by_lytics": writer.rejected,
            "missing_timestamp": missing,
            "watermark": _ts_text(mark_ts) if mark_ts is not None else None,
            "dry_run": dry_run,
        }
        return self._finish(report, hook, context)

    def _execute_full_reload(self, context: Context) -> dict[str, Any]:
        """Read the whole table; send the rows new or changed since the last delivery."""
        dry_run = run_param(context, "dry_run")
        store = RowDigestStore(self.job_id, context["run_id"])
        pending: list[tuple[int, str, bytes]] = []  # (position, key, digest) sent, not acknowledged

        def acknowledged(position: int) -> None:
            done = [(key, digest) for seq, key, digest in pending if seq <= position]
            store.commit(done)
            del pending[: len(done)]

        self.log.info("Importing all of %s into stream %r (new and changed rows)", self.source, self.stream)
        hook = LyticsHook(self.lytics_conn_id)
        writer = self._writer(hook, acknowledged, dry_run)
        progress = Progress(self.log, f"rows imported from {self.source}")
        read = unchanged = 0
        positions = itertools.count()
        try:
            for batch in self._rows(None):
                queued = writer.records
                pairs = [(self.key_of(row), record_digest(row)) for row in batch]
                read += len(batch)
                same: list[str] = []
                for row, (key, digest), new in zip(batch, pairs, store.changed(pairs), strict=True):
                    if not new:
                        same.append(key)
                        continue
                    pending.append((next(positions), key, digest))
                    writer.add({self.out_name(k): jsonable(v) for k, v in row.items()}, pending[-1][0])
                unchanged += len(same)
                if not dry_run:
                    store.touch(same)
                writer.flush()
                if dry_run:
                    pending.clear()  # nothing was sent, nothing is acknowledged
                progress.advance(writer.records - queued)
            progress.finish()
            forgotten = 0 if dry_run else store.prune()
            delivered = store.count()
        finally:
            store.close()
        report = {
            "source": self.source,
            "stream": self.stream,
            "mode": "full_reload",
            "rows_read": read,
            "rows": writer.records,
            "unchanged": unchanged,
            "rejected_by_lytics": writer.rejected,
            "rows_gone": forgotten,
            "rows_known": delivered,
            "dry_run": dry_run,
        }
        return self._finish(report, hook, context)
