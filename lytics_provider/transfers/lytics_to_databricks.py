"""Export a Lytics audience to a Databricks table: stage on S3, ``COPY INTO`` a placeholder, replace.

Steps (each safe to retry; every name depends only on the job, audience and run):

1. stage the audience as one gzip CSV (header = column names; non-scalar fields as JSON strings)
   and upload it to ``s3://{s3_bucket}/{directory}/{job_id}/{table}_{timestamp}.csv.gz``;
2. drop and re-create the placeholder table ``{table}_{unix_ts}`` (a table without columns) and
   ``COPY INTO`` it with ``inferSchema`` and ``mergeSchema``: Databricks infers the column types
   from the file, as the Lytics export does. The row count is checked against the staged file;
3. replace ``{table}`` (default ``users_{slug}``) in one statement,
   ``CREATE OR REPLACE TABLE {table} AS SELECT * FROM {table}_{unix_ts}`` (atomic on Delta:
   readers see the old table until it commits, and its history is kept), then drop the
   placeholder; a failure before this step leaves ``{table}`` as it was;
4. delete the staged object (``keep_staged=True`` keeps it).

Statements go through the SQL Statement Execution API (:class:`DatabricksStatementHook`, on the
official ``DatabricksHook``). The warehouse reads the staged object through its own access to
the bucket (a Unity Catalog external location or an instance profile): no key is put in SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import Context

from lytics_provider.hooks.databricks import DatabricksStatementHook
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.s3_staging import S3StagedLoad
from lytics_provider.pipeline.warehouse_types import plan_columns, sanitize_name
from lytics_provider.transfers.lytics_to_redshift import unix_stamp


def backtick(name: str) -> str:
    """A Databricks identifier in backticks."""
    return "`" + name.replace("`", "``") + "`"


class LyticsToDatabricksOperator(S3StagedLoad):
    """Replace ``users_{slug}`` in ``catalog.database`` with the scanned audience.

    :param s3_bucket: S3 bucket the warehouse can read, for the staged file.
    :param directory: key prefix of the staged files.
    :param catalog: Catalog (default: the warehouse's default catalog).
    :param database: Database (schema) of the table.
    :param table: table name; default ``users_{slug}``.
    :param databricks_conn_id: Databricks connection (Host, HTTP Path, Personal Access Token).
    :param aws_conn_id: AWS connection used to upload the staged file.
    :param keep_staged: keep the staged object after the load.
    :param statement_timeout: seconds one statement may run before it is cancelled.
    """

    template_fields: Sequence[str] = ("fields", "catalog", "database", "table", "s3_bucket", "directory")

    def __init__(
        self,
        *,
        s3_bucket: str,
        database: str,
        catalog: str | None = None,
        directory: str = "lytics",
        table: str | None = None,
        databricks_conn_id: str = "databricks_default",
        aws_conn_id: str | None = "aws_default",
        keep_staged: bool = False,
        statement_timeout: float = 3600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())

    def table_name(self) -> str:
        """``users_{slug}`` (or the configured table), lower case."""
        return sanitize_name(self.table or f"users_{self.slug}", "databricks")

    def qualified(self, name: str) -> str:
        """```catalog`.`database`.`name``` with the parts that are set."""
        parts = [p for p in (self.catalog, self.database) if p]
        return ".".join(backtick(p) for p in [*parts, name])

    def plan(self, context: Context) -> dict[str, Any]:
        columns = plan_columns(self.schema_fields(), self.fields, "databricks")
        table = self.table_name()
        return {
            "table": self.qualified(table),
            "placeholder": self.qualified(f"{table}_{unix_stamp(self.stamp)}"),
            "columns": {c.name: c.sql_type("databricks") for c in columns},
            "staging": self.staging_url(table),
        }

    def hook(self) -> DatabricksStatementHook:
        """The statement hook of the job's connection."""
        return DatabricksStatementHook(self.databricks_conn_id, statement_timeout=self.statement_timeout)

    def deliver(self, context: Context) -> dict[str, Any]:
        columns = plan_columns(self.schema_fields(), self.fields, "databricks")
        table = self.table_name()
        placeholder = f"{table}_{unix_stamp(self.stamp)}"
        staged = self.stage_in_s3(columns, table)
        hook = self.hook()
        hook.run(f"DROP TABLE IF EXISTS {self.qualified(placeholder)}")
        hook.run(f"CREATE TABLE {self.qualified(placeholder)}")
        self._copy_into(hook, placeholder, staged.url)
        loaded = int(hook.scalar(f"SELECT count(*) FROM {self.qualified(placeholder)}") or 0)
        if loaded != staged.rows:
            raise RuntimeError(
                f"COPY INTO loaded {loaded} rows into {placeholder} but {staged.rows} were staged; "
                f"{table} was left unchanged"
            )
        self._swap(hook, placeholder, table)
        self.drop_staged(staged)
        return {
            "table": self.qualified(table),
            "rows": staged.rows,
            "rejected": staged.rejected,
            "columns": len(columns),
            "staging": staged.url,
            "statements": hook.calls,
        }

    def _copy_into(self, hook: DatabricksStatementHook, placeholder: str, location: str) -> None:
        """``COPY INTO`` the placeholder from the staged file; Databricks infers the columns."""
        hook.run(
            f"COPY INTO {self.qualified(placeholder)} FROM '{location}' FILEFORMAT = CSV "
            "FORMAT_OPTIONS ('header' = 'true', 'inferSchema' = 'true', 'mergeSchema' = 'true', "
            "'escape' = '\"', 'multiLine' = 'true') "
            "COPY_OPTIONS ('mergeSchema' = 'true', 'force' = 'true')"
        )

    def _swap(self, hook: DatabricksStatementHook, placeholder: str, table: str) -> None:
        """Replace ``table`` with the loaded placeholder in one statement, then drop the placeholder."""
        hook.run(
            f"CREATE OR REPLACE TABLE {self.qualified(table)} AS SELECT * FROM {self.qualified(placeholder)}"
        )
        hook.run(f"DROP TABLE IF EXISTS {self.qualified(placeholder)}")
        self.log.info("%s replaced by %s", table, placeholder)
