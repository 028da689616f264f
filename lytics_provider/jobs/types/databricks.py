"""Databricks job types: Export Audience (S3 staging, ``COPY INTO``, replace) and Import Table."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from lytics_provider.jobs.types.warehouses import _FIELD, _STREAM, _AudienceExport, _TableImport


class DatabricksExportJob(_AudienceExport):
    """Databricks Export Audience: placeholder table, COPY INTO with schema inference, then replace."""

    type: Literal["databricks_export"]
    catalog: str | None = Field(
        default=None, pattern=_FIELD, description="Catalog: the Databricks catalog that has the database."
    )
    database: str = Field(min_length=1, pattern=_FIELD, description="Database: the schema of the table.")
    table: str | None = Field(default=None, pattern=_FIELD, description="Table; default users_{slug}.")
    s3_bucket: str = Field(min_length=1, description="S3 bucket the warehouse reads the staged file from.")
    directory: str = Field(default="lytics", description="Directory (key prefix) for the staged files.")
    keep_staged: bool = Field(default=False, description="Keep the staged file after the load.")
    statement_timeout: float = Field(
        default=3600.0, gt=0, description="Seconds one SQL statement may run before it is cancelled."
    )
    databricks_conn_id: str = Field(
        default="databricks_default",
        description="Databricks connection: Host, HTTP Path, Personal Access Token.",
    )
    aws_conn_id: str = Field(
        default="aws_default", description="AWS connection used to stage the file on S3."
    )

    deliver_operator: ClassVar[str] = (
        "lytics_provider.transfers.lytics_to_databricks.LyticsToDatabricksOperator"
    )


class DatabricksImportJob(_TableImport):
    """Databricks Import Table: a table or view into a stream, oldest first, with a watermark."""

    type: Literal["databricks_import"]
    stream: str = Field(
        min_length=1, pattern=_STREAM, description="Stream: the Lytics stream to import into."
    )
    databricks_conn_id: str = Field(
        default="databricks_default",
        description="Databricks connection: Host, HTTP Path, Personal Access Token.",
    )

    conn_id_field: ClassVar[str] = "databricks_conn_id"
    dialect: ClassVar[str] = "databricks"
