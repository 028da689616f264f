"""Warehouse and cloud-storage job types: S3, GCS, Redshift, BigQuery and Snowflake.

Audience exports build ``scan`` → ``deliver`` → ``report``; activity exports and imports build one
task. Each job type names its operator by its dotted path, imported only when the tasks are built
(and the amazon/google/snowflake providers only inside the operators), so reading configs stays
light and works without those extras.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from lytics_provider.jobs.base import AudienceExportConfig, JobConfig, StrictModel
from lytics_provider.jobs.deferrable_wait import DeferrableWaitFields
from lytics_provider.jobs.exit_guard import ExitGuardFields
from lytics_provider.jobs.fields import check_listing_since, check_rfc3339
from lytics_provider.jobs.file_name import FileNameTemplate
from lytics_provider.jobs.import_fields import ImportFieldSelection
from lytics_provider.jobs.one_task import OneTaskJob, build_task
from lytics_provider.pipeline.db_url import check_db_url

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext

_NAME = r"^[A-Za-z_][A-Za-z0-9_$-]*(\.[A-Za-z_][A-Za-z0-9_$-]*){0,2}$"
_FIELD = r"^[A-Za-z_][A-Za-z0-9_$]*$"
_STREAM = r"^[A-Za-z0-9_.-]+$"


class _RedshiftEndpoint(StrictModel):
    """The Redshift jobs' ``db_url``: the seed's DB URL, set in the job instead of the authorization."""

    db_url: str | None = Field(
        default=None,
        description=(
            "DB URL: the Redshift endpoint, host:port/database (e.g. cluster.abc123.us-east-2.redshift"
            ".amazonaws.com:5439/dev), replacing the connection's host, port and database; the user "
            "and password stay on the connection."
        ),
    )

    _check_db_url = field_validator("db_url")(check_db_url)


class _AudienceExport(AudienceExportConfig):
    """``scan`` → ``deliver`` (the ``deliver_operator``) → ``report``."""

    deliver_operator: ClassVar[str]

    def add_tasks(self, job: JobContext) -> None:
        self.add_scan_deliver_report(job, build_task(self, self.deliver_operator, job, "deliver"))


class _FileExport(_AudienceExport, FileNameTemplate):
    bucket: str = Field(min_length=1, description="Bucket Name the file is written to.")
    directory: str = Field(default="", description="Directory (key prefix) inside the bucket.")
    file_format: Literal["csv", "jsonl"] = Field(default="csv", description="csv (header row) or jsonl.")
    compression: Literal["none", "gz"] = Field(default="gz", description="none or gz (.gz appended).")
    pgp_conn_id: str | None = Field(
        default=None, description="lytics_pgp connection whose public key encrypts the file (.pgp appended)."
    )


class S3ExportJob(_FileExport):
    """Amazon S3 Export Audiences: the audience as one CSV or JSON-lines file per run."""

    type: Literal["s3_export"]
    aws_conn_id: str = Field(default="aws_default", description="Airflow AWS connection (keys or IAM role).")

    deliver_operator: ClassVar[str] = "lytics_provider.transfers.lytics_to_s3.LyticsToS3Operator"


class GCSExportJob(_FileExport):
    """Google Cloud Storage CSV Export: the audience as one file per run."""

    type: Literal["gcs_export"]
    gcp_conn_id: str = Field(default="google_cloud_default", description="Airflow Google Cloud connection.")

    deliver_operator: ClassVar[str] = "lytics_provider.transfers.lytics_to_gcs.LyticsToGCSOperator"


class RedshiftExportJob(_AudienceExport, _RedshiftEndpoint):
    """Amazon Redshift Export Audience: S3 staging, COPY into a full temporary table, swap by rename."""

    type: Literal["redshift_export"]
    s3_bucket: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "S3 Bucket Name used for staging; default the bucket named in the AWS connection's extra "
            '({"service_config": {"s3": {"bucket_name": ...}}}).'
        ),
    )
    directory: str = Field(default="lytics", description="Directory (key prefix) for the staged files.")
    region: str | None = Field(default=None, description="Region of the bucket, e.g. us-east-2.")
    table: str | None = Field(
        default=None, pattern=_FIELD, description="Table name; default the audience slug."
    )
    schema_name: str | None = Field(default=None, pattern=_FIELD, description="Database schema of the table.")
    redshift_conn_id: str = Field(
        default="redshift_default", description="Redshift (or PostgreSQL) connection: user, password, DB URL."
    )
    aws_conn_id: str = Field(
        default="aws_default", description="AWS connection for S3 (and COPY credentials)."
    )
    iam_role: str | None = Field(default=None, description="IAM role ARN for COPY instead of the AWS keys.")
    copy_method: Literal["s3", "stdin"] = Field(
        default="s3", description="s3: Redshift COPY from S3; stdin: COPY FROM STDIN (PostgreSQL targets)."
    )
    keep_staged: bool = Field(
        default=False,
        description=(
            "Keep the staged files in S3 after the COPY; they are tagged to expire after 72 hours by a "
            "lifecycle rule set on the bucket (needs s3:PutLifecycleConfiguration). Default: deleted."
        ),
    )

    deliver_operator: ClassVar[str] = "lytics_provider.transfers.lytics_to_redshift.LyticsToRedshiftOperator"


class BigQueryExportJob(_AudienceExport, DeferrableWaitFields):
    """Google BigQuery Export Audiences: user table plus one table per non-scalar field."""

    type: Literal["bigquery_export"]
    project: str | None = Field(default=None, description="BigQuery Project (default: the connection's).")
    dataset: str = Field(min_length=1, pattern=_FIELD, description="BigQuery Dataset (created if missing).")
    table: str | None = Field(default=None, pattern=_FIELD, description="User table; default users_{slug}.")
    gcs_bucket: str = Field(min_length=1, description="GCS bucket for the staged CSV files.")
    gcs_directory: str = Field(default="lytics", description="Prefix of the staged files.")
    export_scalar_fields: bool = Field(default=True, description="Export Scalar Fields (the user table).")
    export_non_scalar_fields: bool = Field(
        default=True, description="Export Non-Scalar Fields (one table per list/map field, joined by id)."
    )
    location: str | None = Field(default=None, description="BigQuery location, e.g. US or EU.")
    gcp_conn_id: str = Field(default="google_cloud_default", description="Airflow Google Cloud connection.")

    deliver_operator: ClassVar[str] = "lytics_provider.transfers.lytics_to_bigquery.LyticsToBigQueryOperator"


class BigQueryAudienceChangesJob(ExitGuardFields, AudienceExportConfig):
    """Google BigQuery Export Audience Changes: an audience's enters and exits appended to a table."""

    type: Literal["bigquery_export_audience_changes"]
    project: str | None = Field(default=None, description="BigQuery Project (default: the connection's).")
    dataset: str = Field(min_length=1, pattern=_FIELD, description="BigQuery Dataset (created if missing).")
    table: str = Field(
        default="audience_changes",
        pattern=_FIELD,
        description="Table the rows are appended to (created if missing).",
    )
    id_field: str = Field(
        default="email", min_length=1, description="ID Field: the user field written in the email column."
    )
    gcs_bucket: str = Field(min_length=1, description="GCS bucket for the staged CSV files.")
    gcs_directory: str = Field(default="lytics", description="Prefix of the staged files.")
    location: str | None = Field(default=None, description="BigQuery location, e.g. US or EU.")
    gcp_conn_id: str = Field(default="google_cloud_default", description="Airflow Google Cloud connection.")
    batch_size: int = Field(
        default=10_000, ge=1, le=100_000, description="Rows per load job (one checkpoint each)."
    )

    def add_tasks(self, job: JobContext) -> None:
        """``scan`` (of the ID Field) -> ``deliver`` -> ``report``."""
        from lytics_provider.jobs.sync_tasks import add_deliver_tasks, field_roots
        from lytics_provider.transfers.lytics_to_bigquery_changes import (
            LyticsToBigQueryAudienceChangesOperator,
        )

        scanned = field_roots([self.id_field])
        add_deliver_tasks(self, job, LyticsToBigQueryAudienceChangesOperator, scanned, scanned)


class SnowflakeExportJob(_AudienceExport):
    """Snowflake Bulk Export: stage, COPY INTO USERS_{slug}_{ts}, swap into USERS_{slug}."""

    type: Literal["snowflake_export"]
    database: str | None = Field(
        default=None, pattern=_FIELD, description="Database (default: the connection's)."
    )
    schema_name: str | None = Field(default=None, pattern=_FIELD, description="Schema: the target schema.")
    stage: str = Field(
        default="LYTICS_EXPORT_STAGE", pattern=_FIELD, description="Internal stage for uploads."
    )
    swap_method: Literal["swap", "rename"] = Field(
        default="swap", description="swap: ALTER TABLE ... SWAP WITH (atomic); rename: DROP + RENAME."
    )
    on_schema_change: Literal["suffix", "replace"] = Field(
        default="suffix",
        description="When USERS_{slug} has other columns: suffix (USERS_{slug}1, as Lytics does) or replace.",
    )
    snowflake_conn_id: str = Field(default="snowflake_default", description="Airflow Snowflake connection.")

    deliver_operator: ClassVar[str] = (
        "lytics_provider.transfers.lytics_to_snowflake.LyticsToSnowflakeOperator"
    )


class _ActivityExport(OneTaskJob, JobConfig):
    """One ``export`` task (the ``task_operator``)."""

    task_id: ClassVar[str] = "export"
    stream: str = Field(min_length=1, pattern=_STREAM, description="Lytics stream whose events are exported.")


class S3ActivityExportJob(_ActivityExport):
    """Amazon S3 Export Activity Data: a stream's events (all fields) not yet delivered, one file a run."""

    type: Literal["s3_activity_export"]
    bucket: str = Field(min_length=1, description="S3 Bucket Name.")
    directory: str = Field(default="", description="Directory (key prefix).")
    file_format: Literal["csv", "jsonl"] = Field(default="csv", description="csv or jsonl.")
    compression: Literal["none", "gz"] = Field(default="gz", description="none or gz.")
    aws_conn_id: str = Field(default="aws_default", description="Airflow AWS connection.")

    task_operator: ClassVar[str] = "lytics_provider.transfers.lytics_to_s3.LyticsStreamToS3Operator"


class BigQueryActivityExportJob(_ActivityExport, DeferrableWaitFields):
    """Google BigQuery Export Activity Data: a stream's events appended to events_{stream}, each once."""

    type: Literal["bigquery_activity_export"]
    project: str | None = Field(default=None, description="BigQuery Project.")
    dataset: str = Field(min_length=1, pattern=_FIELD, description="BigQuery Dataset.")
    table: str | None = Field(default=None, pattern=_FIELD, description="Table; default events_{stream}.")
    gcs_bucket: str = Field(min_length=1, description="GCS bucket for the staged file.")
    location: str | None = Field(default=None, description="BigQuery location.")
    gcp_conn_id: str = Field(default="google_cloud_default", description="Airflow Google Cloud connection.")

    task_operator: ClassVar[str] = (
        "lytics_provider.transfers.lytics_to_bigquery.LyticsStreamToBigQueryOperator"
    )


class _TableImport(OneTaskJob, JobConfig):
    """One ``import`` task of the SQL table import, over the ``conn_id_field`` connection in ``dialect``;
    a dry run reads and counts rows without sending them or moving the watermark."""

    task_operator: ClassVar[str] = "lytics_provider.transfers.sql_to_lytics.SqlTableToLyticsOperator"
    conn_id_field: ClassVar[str]
    dialect: ClassVar[str]

    source_type: Literal["table", "view"] = Field(default="table", description="Source Type: table or view.")
    source: str = Field(
        min_length=1, pattern=_NAME, description="Source: the table or view (schema.name allowed)."
    )
    modified_timestamp_field: str = Field(
        min_length=1,
        pattern=_FIELD,
        description="Modified Timestamp Field: orders rows; saved as the watermark.",
    )
    event_timestamp_field: str | None = Field(
        default=None, pattern=_FIELD, description="Event Timestamp Field; default the modified field."
    )
    events_since: str | None = Field(
        default=None, description="Events Since, RFC 3339 (YYYY-MM-DDThh:mm:ss+00:00): earliest row imported."
    )
    key_fields: list[str] | None = Field(
        default=None,
        description="Fields identifying a row (tiebreak for equal timestamps); default whole row.",
    )
    batch_size: int = Field(default=5000, ge=1, le=100_000, description="Rows per batch sent to Lytics.")

    _check_since = field_validator("events_since")(check_rfc3339)

    def task_arguments(self) -> dict[str, Any]:
        """The warehouse's connection id and SQL dialect."""
        return {"conn_id": getattr(self, self.conn_id_field), "dialect": self.dialect}


class _ReloadableTableImport(_TableImport):
    """A table import that may, for a table without a modified-timestamp column, reload it whole and
    send only new or changed rows (``full_reload``)."""

    modified_timestamp_field: str | None = Field(
        default=None,
        min_length=1,
        pattern=_FIELD,
        description="Modified Timestamp Field: orders rows; saved as the watermark. Omit with full_reload.",
    )
    key_fields: list[str] | None = Field(
        default=None,
        description=(
            "Fields identifying a row: the tiebreak for equal timestamps, and with full_reload the row "
            "a changed version replaces (default: the whole row)."
        ),
    )
    full_reload: bool = Field(
        default=False,
        description=(
            "For a table without a modified-timestamp column: read the whole table each run and send "
            "only rows new or changed since the last run (a digest per row, keyed by key_fields)."
        ),
    )

    @model_validator(mode="after")
    def _check_reload(self) -> _ReloadableTableImport:
        if self.full_reload and self.modified_timestamp_field:
            raise ValueError(
                "full_reload reads the whole table and keeps no watermark: remove "
                "modified_timestamp_field, or set full_reload: false to import by the watermark"
            )
        if self.full_reload and self.events_since:
            raise ValueError(
                "events_since needs a modified_timestamp_field: remove it with full_reload: true"
            )
        if not self.full_reload and not self.modified_timestamp_field:
            raise ValueError(
                "modified_timestamp_field is missing: name the table's modified-timestamp column, "
                "or set full_reload: true for a table without one"
            )
        return self


class RedshiftImportJob(_ReloadableTableImport, _RedshiftEndpoint):
    """Amazon Redshift Import Table over its PostgreSQL connection; default stream redshift_{table}."""

    type: Literal["redshift_import"]
    stream: str | None = Field(default=None, pattern=_STREAM, description="Stream; default redshift_{table}.")
    redshift_conn_id: str = Field(
        default="redshift_default", description="Redshift or PostgreSQL connection."
    )
    conn_id_field: ClassVar[str] = "redshift_conn_id"
    dialect: ClassVar[str] = "postgres"


class SnowflakeImportJob(_ReloadableTableImport):
    """Snowflake Import Audiences and Activity Data from a table or view."""

    type: Literal["snowflake_import"]
    stream: str = Field(
        min_length=1, pattern=_STREAM, description="Stream: the Lytics stream to import into."
    )
    snowflake_conn_id: str = Field(default="snowflake_default", description="Airflow Snowflake connection.")

    conn_id_field: ClassVar[str] = "snowflake_conn_id"
    dialect: ClassVar[str] = "snowflake"


class BigQueryImportJob(_ReloadableTableImport):
    """Google BigQuery Import Activity Data from a table or view (``dataset.table``)."""

    type: Literal["bigquery_import"]
    stream: str = Field(min_length=1, pattern=_STREAM, description="Lytics stream to import into.")
    location: str | None = Field(default=None, description="BigQuery location.")
    gcp_conn_id: str = Field(default="google_cloud_default", description="Airflow Google Cloud connection.")

    conn_id_field: ClassVar[str] = "gcp_conn_id"
    dialect: ClassVar[str] = "bigquery"


class _FileImport(OneTaskJob, JobConfig):
    """One ``import`` task (the ``task_operator``); a dry run lists the files it would import without
    reading or sending them."""

    bucket: str = Field(min_length=1, description="Bucket.")
    prefix: str = Field(default="", description="Prefix, e.g. new-users- (folders allowed: in/new-users-).")
    file_type: Literal["csv", "json"] = Field(
        default="csv",
        description="csv (with a header row; CSV without one is unsupported) or json (JSON lines).",
    )
    timestamp_field: str | None = Field(default=None, description="Timestamp Field of the records.")
    since: str | None = Field(default=None, description="Since: oldest file date, yyyy/mm/dd HH:MM/SS.")
    starting_file: str | None = Field(
        default=None, description="Starting File: it and newer files are imported."
    )
    gzipped: bool | None = Field(
        default=None, description="GZipped: informational, gzip files are recognised by their content."
    )
    pgp_encrypted: bool = Field(default=False, description="PGP Encrypted: needs pgp_conn_id.")
    pgp_conn_id: str | None = Field(default=None, description="lytics_pgp connection with the private key.")
    continuous: bool = Field(
        default=False,
        description="Continuous import of prefix_timestamp.json files, in name-timestamp order.",
    )
    batch_size: int = Field(default=5000, ge=1, le=100_000, description="Records per batch sent to Lytics.")

    _check_since = field_validator("since")(check_listing_since)

    @model_validator(mode="after")
    def _check_pgp(self) -> _FileImport:
        if self.pgp_encrypted and not self.pgp_conn_id:
            raise ValueError(
                "pgp_encrypted is true but pgp_conn_id is missing: name the lytics_pgp connection"
            )
        return self


class S3ImportJob(_FileImport, ImportFieldSelection):
    """Amazon S3 Import Audiences & Activity Data (CSV) / Custom Data (JSON)."""

    type: Literal["s3_import"]
    stream: str = Field(min_length=1, pattern=_STREAM, description="Lytics stream to import into.")
    aws_conn_id: str = Field(default="aws_default", description="Airflow AWS connection.")
    continuous: bool = Field(
        default=False,
        description="Continuous import of prefix_timestamp.json files, in name-timestamp order; a run "
        "that finds no next file stops it until starting_file, prefix, since or bucket changes.",
    )

    task_operator: ClassVar[str] = "lytics_provider.transfers.s3_to_lytics.S3ToLyticsOperator"


class GCSImportJob(_FileImport, ImportFieldSelection):
    """Google Cloud Storage Import Files; default stream gcs_files."""

    type: Literal["gcs_import"]
    project: str | None = Field(
        default=None,
        description="Project: the Google Project ID to import from (the storage client's project); "
        "default the connection's.",
    )
    stream: str = Field(default="gcs_files", pattern=_STREAM, description="Stream; default gcs_files.")
    gcp_conn_id: str = Field(default="google_cloud_default", description="Airflow Google Cloud connection.")
    continuous: bool = Field(
        default=False,
        description="Continuous Import: import continuously, looking for new files every frequency "
        "(keep_updated); the files are taken by date whatever their names.",
    )

    task_operator: ClassVar[str] = "lytics_provider.transfers.gcs_to_lytics.GCSToLyticsOperator"

    @model_validator(mode="before")
    @classmethod
    def _continuous_keeps_updated(cls, data: Any) -> Any:
        """Continuous Import runs the job on its schedule: it sets keep_updated."""
        if not isinstance(data, dict) or not data.get("continuous"):
            return data
        if data.get("keep_updated") is False:
            raise ValueError(
                "continuous imports look for new files every frequency: remove keep_updated: false "
                "(continuous: true sets it), or set continuous: false to import once"
            )
        return {**data, "keep_updated": True}


#: The object-store import options (Bucket, Prefix, Since, Starting File, PGP, Continuous) for
#: presets of the ingest engine in other modules.
FileImportOptions = _FileImport
