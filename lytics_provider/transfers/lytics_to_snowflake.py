"""Bulk Audience Export to Snowflake: stage, ``COPY INTO`` a temporary table, swap it in.

Steps (each batch holds the entire audience and replaces the previous table):

1. stage the audience as one gzip CSV (typed cells; non-scalar fields as JSON for ``VARIANT``)
   and ``PUT`` it on an internal stage (``stage``, created if missing) under
   ``{job_id}/{timestamp}/``;
2. ``CREATE OR REPLACE TABLE USERS_{slug}_{unix_ts}`` with types from the Lytics field types
   (``BOOLEAN``, ``VARCHAR(16777216)``, ``NUMBER(38,0)``, ``FLOAT``, ``TIMESTAMP_TZ(9)``,
   ``VARIANT``) and ``COPY INTO`` it (``FORCE`` so a retried run reloads its own file, ``PURGE``
   to remove it from the stage); the row count is checked against the staged file;
3. make it ``USERS_{slug}``: ``ALTER TABLE USERS_{slug} SWAP WITH USERS_{slug}_{unix_ts}`` (one
   atomic metadata operation; readers always see a complete table) and drop the old data, or a
   plain rename when there is no table yet. ``swap_method="rename"`` uses DROP + RENAME instead.

As the Lytics export does, when ``USERS_{slug}`` exists with different columns the new table
gets an incremental suffix (``USERS_{slug}1``, ...) rather than replacing it
(``on_schema_change="replace"`` replaces it instead). Columns are compared by name and order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from airflow.sdk import Context

from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.audience_export import AudienceExportOperator
from lytics_provider.pipeline.warehouse_types import Column, create_table_sql, plan_columns, sanitize_name
from lytics_provider.transfers.lytics_to_redshift import quote_ident, unix_stamp

MAX_SUFFIX = 100


def snowflake_columns(columns: Sequence[Column]) -> list[Column]:
    """Columns with Snowflake-style upper-case names (so they need no quotes in queries)."""
    return [Column(c.field, c.lytics_type, c.name.upper(), c.kind) for c in columns]


class LyticsToSnowflakeOperator(AudienceExportOperator):
    """Replace ``USERS_{slug}`` in ``database.schema`` with the scanned audience.

    :param database: Database (default: the connection's).
    :param schema_name: Schema, the target schema (default: the connection's).
    :param stage: internal stage used for the upload.
    :param table: table name; default ``USERS_{SLUG}``.
    :param swap_method: ``swap`` (``ALTER TABLE ... SWAP WITH``) or ``rename`` (DROP + RENAME).
    :param on_schema_change: ``suffix`` (Lytics behaviour) or ``replace``.
    """

    template_fields: Sequence[str] = ("fields", "database", "schema_name", "table")

    def __init__(
        self,
        *,
        snowflake_conn_id: str = "snowflake_default",
        database: str | None = None,
        schema_name: str | None = None,
        stage: str = "LYTICS_EXPORT_STAGE",
        table: str | None = None,
        swap_method: Literal["swap", "rename"] = "swap",
        on_schema_change: Literal["suffix", "replace"] = "suffix",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        if swap_method not in ("swap", "rename"):
            raise ValueError(f"swap_method {swap_method!r} is not supported; use 'swap' or 'rename'")
        if on_schema_change not in ("suffix", "replace"):
            raise ValueError(
                f"on_schema_change {on_schema_change!r} is not supported; use 'suffix' or 'replace'"
            )

    def table_name(self) -> str:
        """``USERS_{SLUG}`` (or the configured table), upper case."""
        return sanitize_name(self.table or f"USERS_{self.slug}", "snowflake").upper()

    def qualified(self, name: str) -> str:
        """``"DB"."SCHEMA"."NAME"`` with the parts that are set."""
        parts = [p for p in (self.database, self.schema_name) if p]
        return ".".join([*(quote_ident(p) for p in parts), quote_ident(name)])

    def plan(self, context: Context) -> dict[str, Any]:
        columns = snowflake_columns(plan_columns(self.schema_fields(), self.fields, "snowflake"))
        table = self.table_name()
        return {
            "table": table,
            "temp_table": f"{table}_{unix_stamp(self.stamp)}",
            "columns": {c.name: c.sql_type("snowflake") for c in columns},
        }

    def deliver(self, context: Context) -> dict[str, Any]:
        from airflow.providers.snowflake.hooks.snowflake import SnowflakeHook

        columns = snowflake_columns(plan_columns(self.schema_fields(), self.fields, "snowflake"))
        base = self.table_name()
        temp = f"{base}_{unix_stamp(self.stamp)}"
        with self.rejects() as rejects:
            staged = self.stage_warehouse_csv(columns, f"{base}_{self.stamp}.csv.gz", rejects)
        stage_path = f"{self.stage}/{sanitize_name(self.job_id, 'snowflake')}/{self.stamp}"
        conn = SnowflakeHook(snowflake_conn_id=self.snowflake_conn_id).get_conn()
        try:
            cur = conn.cursor()
            location = (self.database, self.schema_name)
            stage_ref = ".".join([*(quote_ident(p) for p in location if p), self.stage])
            cur.execute(f"CREATE STAGE IF NOT EXISTS {stage_ref}")
            cur.execute(
                f"PUT 'file://{staged.path}' @{stage_path.replace(self.stage, stage_ref, 1)} "
                "AUTO_COMPRESS = FALSE OVERWRITE = TRUE"
            )
            cur.execute(
                create_table_sql(f"OR REPLACE TABLE {self.qualified(temp)}", columns, "snowflake").replace(
                    "CREATE TABLE OR REPLACE TABLE", "CREATE OR REPLACE TABLE"
                )
            )
            self._load_temp(cur, temp, columns, stage_path.replace(self.stage, stage_ref, 1))
            cur.execute(f"SELECT count(*) FROM {self.qualified(temp)}")
            loaded = int(cur.fetchone()[0])
            if loaded != staged.rows:
                raise RuntimeError(
                    f"COPY INTO loaded {loaded} rows into {temp} but {staged.rows} were staged; "
                    f"{base} was left unchanged"
                )
            table = self._target_name(cur, base, columns)
            self._swap(cur, temp, table)
        finally:
            conn.close()
        staged.path.unlink()
        return {"table": table, "rows": staged.rows, "rejected": staged.rejected, "columns": len(columns)}

    def _load_temp(self, cur: Any, temp: str, columns: Sequence[Column], stage_path: str) -> None:
        """``COPY INTO`` the temporary table from this run's staged file."""
        names = ", ".join(quote_ident(c.name) for c in columns)
        cur.execute(
            f"COPY INTO {self.qualified(temp)} ({names}) FROM @{stage_path}/ "
            "FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1 FIELD_OPTIONALLY_ENCLOSED_BY = '\"' "
            "COMPRESSION = GZIP EMPTY_FIELD_AS_NULL = TRUE) "
            "ON_ERROR = ABORT_STATEMENT PURGE = TRUE FORCE = TRUE"
        )

    def _columns_of(self, cur: Any, table: str) -> list[str] | None:
        info = (
            f"{quote_ident(self.database)}.INFORMATION_SCHEMA.COLUMNS"
            if self.database
            else ("INFORMATION_SCHEMA.COLUMNS")
        )
        schema_filter = "table_schema = %s" if self.schema_name else "table_schema = CURRENT_SCHEMA()"
        params: list[Any] = [table, *([self.schema_name] if self.schema_name else [])]
        cur.execute(
            f"SELECT column_name FROM {info} WHERE table_name = %s AND {schema_filter} "
            "ORDER BY ordinal_position",
            params,
        )
        names = [str(row[0]) for row in cur.fetchall()]
        return names or None

    def _target_name(self, cur: Any, base: str, columns: Sequence[Column]) -> str:
        """``base``, or ``base{n}`` when ``base`` has other columns (``on_schema_change="suffix"``)."""
        wanted = [c.name for c in columns]
        if self.on_schema_change == "replace":
            return base
        for n in range(MAX_SUFFIX):
            name = f"{base}{n}" if n else base
            existing = self._columns_of(cur, name)
            if existing is None or existing == wanted:
                if n:
                    self.log.warning("%s has different columns; exporting to %s instead", base, name)
                return name
        raise RuntimeError(f"{base}1..{base}{MAX_SUFFIX - 1} all exist with other columns; drop old ones")

    def _swap(self, cur: Any, temp: str, table: str) -> None:
        """Make the loaded table ``table`` (atomic ``SWAP WITH``, or DROP + RENAME)."""
        exists = self._columns_of(cur, table) is not None
        if exists and self.swap_method == "swap":
            cur.execute(f"ALTER TABLE {self.qualified(table)} SWAP WITH {self.qualified(temp)}")
            cur.execute(f"DROP TABLE {self.qualified(temp)}")
        else:
            if exists:
                cur.execute(f"DROP TABLE {self.qualified(table)}")
            cur.execute(f"ALTER TABLE {self.qualified(temp)} RENAME TO {self.qualified(table)}")
        self.log.info(
            "%s is now %s (%s)", temp, table, "swap" if exists and self.swap_method == "swap" else "rename"
        )
