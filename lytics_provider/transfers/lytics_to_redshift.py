"""Export a Lytics audience to an Amazon Redshift table: stage on S3, COPY, swap by rename.

Steps (each safe to retry; every name depends only on the job, audience and run):

1. stage the audience as one gzip CSV (typed cells, header = column names) and upload it to
   ``s3://{s3_bucket}/{directory}/{table}_{timestamp}.csv.gz``;
2. ``CREATE TABLE {table}_{unix_ts}`` (a real table, not a Redshift TEMP table) with column types
   from the Lytics field types (:mod:`lytics_provider.pipeline.warehouse_types`), and ``COPY`` the
   staged file into it; the row count is checked against the staged file before going on;
3. swap in one transaction: ``DROP TABLE IF EXISTS {table}`` then ``ALTER TABLE {table}_{unix_ts}
   RENAME TO {table}``. Readers see the old table until the commit and the new one after it;
4. delete the staged object. ``keep_staged=True`` keeps it, tagged to expire: the bucket gets a
   lifecycle rule removing tagged staged files after 3 days (72 hours, rounded up by S3 to the
   next midnight UTC; :mod:`lytics_provider.pipeline.s3_expiry`), so no manual clean-up is needed.

The SQL connection may be a ``redshift`` connection (``RedshiftSQLHook``) or a ``postgres`` one
(``PostgresHook``, Redshift speaks the PostgreSQL protocol). ``copy_method="s3"`` runs Redshift's
``COPY ... FROM 's3://...'``; ``copy_method="stdin"`` streams the staged object through
``COPY ... FROM STDIN`` instead, for PostgreSQL targets, which cannot read S3.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from typing import Any, Literal

from airflow.sdk import Context

from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.s3_staging import S3StagedLoad
from lytics_provider.pipeline.db_url import parse_db_url, sql_connection
from lytics_provider.pipeline.warehouse_types import (
    Column,
    create_table_sql,
    plan_columns,
    sanitize_name,
)

CopyMethod = Literal["s3", "stdin"]


def quote_ident(name: str) -> str:
    """A double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def unix_stamp(stamp: str) -> int:
    """Unix seconds of a ``YYYYmmddTHHMMSSZ`` run stamp."""
    from datetime import UTC, datetime

    return int(datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp())


def copy_from_stream(cur: Any, sql: str, stream: Any, chunk: int = 1 << 20) -> None:
    """Run ``COPY ... FROM STDIN`` fed from a binary stream (psycopg 3 or psycopg2 cursor)."""
    if hasattr(cur, "copy_expert"):
        cur.copy_expert(sql, stream, size=chunk)
        return
    with cur.copy(sql) as copy:
        while data := stream.read(chunk):
            copy.write(data)


class LyticsToRedshiftOperator(S3StagedLoad):
    """Replace the table named from the audience slug with the scanned audience.

    :param s3_bucket: S3 Bucket Name for staging; default the AWS connection's bucket
        (``service_config.s3.bucket_name`` in its extra).
    :param directory: Directory (key prefix) for staging.
    :param table: table name; default the audience slug with ``table_prefix`` (sanitised).
    :param schema_name: database schema of the table (default: the connection's search path).
    :param iam_role: IAM role ARN for ``COPY``; without it, the AWS connection's keys are used.
    :param region: Region of the bucket, when it differs from the cluster's.
    :param keep_staged: keep the staged file, expiring 72 hours after upload (an S3 lifecycle rule).
    :param db_url: DB URL ``host[:port][/database]`` replacing the connection's; the user and
        password stay on the connection.
    """

    template_fields: Sequence[str] = ("fields", "s3_bucket", "directory", "table", "schema_name")
    kept_expiry_days = 3

    def __init__(
        self,
        *,
        s3_bucket: str | None = None,
        directory: str = "lytics",
        table: str | None = None,
        table_prefix: str = "",
        schema_name: str | None = None,
        redshift_conn_id: str = "redshift_default",
        aws_conn_id: str | None = "aws_default",
        iam_role: str | None = None,
        region: str | None = None,
        copy_method: CopyMethod = "s3",
        keep_staged: bool = False,
        db_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        if db_url:
            parse_db_url(db_url)
        if copy_method not in ("s3", "stdin"):
            raise ValueError(f"copy_method {copy_method!r} is not supported; use 's3' (Redshift) or 'stdin'")

    # -- names ---------------------------------------------------------------------------------
    def table_name(self) -> str:
        """The main table's (unquoted) name."""
        return sanitize_name(self.table or f"{self.table_prefix}{self.slug}", "redshift")

    def qualified(self, name: str) -> str:
        """``"schema"."name"`` (or just ``"name"``)."""
        if not self.schema_name:
            return quote_ident(name)
        return f"{quote_ident(self.schema_name)}.{quote_ident(name)}"

    def plan(self, context: Context) -> dict[str, Any]:
        columns = plan_columns(self.schema_fields(), self.fields, "redshift")
        table = self.table_name()
        return {
            "table": table,
            "temp_table": f"{table}_{unix_stamp(self.stamp)}",
            "columns": {c.name: c.sql_type("redshift") for c in columns},
            "staging": self.staging_url(table),
        }

    # -- delivery ------------------------------------------------------------------------------
    def deliver(self, context: Context) -> dict[str, Any]:
        columns = plan_columns(self.schema_fields(), self.fields, "redshift")
        table = self.table_name()
        temp = f"{table}_{unix_stamp(self.stamp)}"
        staged = self.stage_in_s3(columns, table)
        conn = sql_connection(self.redshift_conn_id, self.db_url)
        try:
            conn.autocommit = False
            with conn.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS {self.qualified(temp)}")
                cur.execute(create_table_sql(self.qualified(temp), columns, "redshift"))
                self._load_temp(cur, temp, columns, staged.s3, staged.key)
                cur.execute(f"SELECT count(*) FROM {self.qualified(temp)}")
                loaded = int(cur.fetchone()[0])
                if loaded != staged.rows:
                    conn.rollback()
                    raise RuntimeError(
                        f"COPY loaded {loaded} rows into {temp} but {staged.rows} were staged; "
                        f"the table {table} was left unchanged"
                    )
            conn.commit()
            self._swap(conn, temp, table)
        finally:
            conn.close()
        self.drop_staged(staged)
        return {
            "table": table,
            "rows": staged.rows,
            "rejected": staged.rejected,
            "columns": len(columns),
            "staging": staged.url,
        }

    def _load_temp(self, cur: Any, temp: str, columns: Sequence[Column], s3: Any, key: str) -> None:
        """COPY the staged object into the temporary table (uncommitted on return)."""
        names = ", ".join(quote_ident(c.name) for c in columns)
        if self.copy_method == "stdin":
            body = s3.get_key(key, self.s3_bucket).get()["Body"]
            sql = f"COPY {self.qualified(temp)} ({names}) FROM STDIN WITH (FORMAT csv, HEADER true)"
            with gzip.GzipFile(fileobj=body, mode="rb") as stream:
                copy_from_stream(cur, sql, stream)
            return
        cur.execute(
            f"COPY {self.qualified(temp)} ({names}) FROM 's3://{self.s3_bucket}/{key}' "
            f"{self._authorization(s3)} FORMAT AS CSV IGNOREHEADER 1 GZIP TIMEFORMAT 'auto' "
            "EMPTYASNULL ACCEPTINVCHARS COMPUPDATE OFF STATUPDATE OFF"
            + (f" REGION '{self.region}'" if self.region else "")
        )

    def _authorization(self, s3: Any) -> str:
        if self.iam_role:
            return f"IAM_ROLE '{self.iam_role}'"
        from airflow.providers.amazon.aws.utils.redshift import build_credentials_block
        from airflow.sdk.log import mask_secret

        credentials = s3.get_credentials()
        for secret in (credentials.secret_key, credentials.token):
            if secret:
                mask_secret(secret)
        return f"CREDENTIALS '{build_credentials_block(credentials)}'"

    def _swap(self, conn: Any, temp: str, table: str) -> None:
        """Replace the main table with the loaded one in a single transaction."""
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {self.qualified(table)}")
            cur.execute(f"ALTER TABLE {self.qualified(temp)} RENAME TO {quote_ident(table)}")
        conn.commit()
        self.log.info("Swapped %s into %s", temp, table)
