"""Braze: Import Activity, a preset of the object-store file import into ``braze_users``.

Braze's Export API ("Users by Segment") writes the segment's users to the cloud storage set up in
Braze (S3, Azure or Google Cloud Storage) as ZIP files of JSON lines, one user a line, under
``segment-export/SEGMENT_ID/YYYY-MM-dd/...``; each run imports the files not imported before.
Dashboard CSV exports are imported with ``file_type: csv`` (or through the Lytics File Service).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from lytics_provider.jobs.operator_args import operator_kwargs
from lytics_provider.jobs.types.warehouses import FileImportOptions

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext

SEGMENT_EXPORT_PREFIX = "segment-export/"


class BrazeImportJob(FileImportOptions):
    """Braze Import Activity: Users by Segment export files from S3, Azure or GCS into braze_users."""

    type: Literal["braze_import"]
    storage: Literal["s3", "gcs", "azure_blob"] = Field(
        default="s3",
        description="Where Braze writes its exports: s3, gcs or azure_blob (bucket = container).",
    )
    bucket: str = Field(min_length=1, description="Bucket (or Azure container) Braze exports to.")
    segment_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Braze segment id: only segment-export/{segment_id}/ is read; default every segment.",
    )
    prefix: str | None = Field(  # type: ignore[assignment]
        default=None,
        description="Key prefix of the export files; default segment-export/{segment_id}/, or "
        "segment-export/ without segment_id.",
    )
    file_type: Literal["csv", "json"] = Field(default="json", description="json (JSON lines) or csv.")
    stream: str = Field(default="braze_users", pattern=r"^[A-Za-z0-9_.-]+$", description="Lytics stream.")
    aws_conn_id: str = Field(default="aws_default", description="Airflow AWS connection (storage s3).")
    gcp_conn_id: str = Field(
        default="google_cloud_default", description="Google Cloud connection (storage gcs)."
    )
    wasb_conn_id: str = Field(
        default="wasb_default", description="Azure Blob connection (storage azure_blob)."
    )

    @model_validator(mode="after")
    def _segment_prefix(self) -> BrazeImportJob:
        if self.segment_id and self.prefix is not None:
            raise ValueError("set either segment_id or prefix, not both")
        return self

    def segment_prefix(self) -> str:
        """Where the files are read: the configured prefix, else the segment's (or every segment's)."""
        if self.prefix is not None:
            return self.prefix
        return f"{SEGMENT_EXPORT_PREFIX}{self.segment_id}/" if self.segment_id else SEGMENT_EXPORT_PREFIX

    def add_tasks(self, job: JobContext) -> None:
        from lytics_provider.files.ingest_operator import StorageFilesToLyticsOperator

        StorageFilesToLyticsOperator(
            **operator_kwargs(
                self,
                StorageFilesToLyticsOperator,
                task_id="import",
                job_id=job.job_id,
                prefix=self.segment_prefix(),
            )
        )
