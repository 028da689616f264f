"""Swrve: Import Activity Data, a preset of the S3 file import into ``swrve_activity``.

Swrve's raw data export writes event files to an S3 bucket; the job reads them with the AWS S3
Access Token and Secret Token of an Airflow ``aws`` connection (JSON lines, gzip recognised by
content), each file once, oldest first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from lytics_provider.jobs.operator_args import operator_kwargs
from lytics_provider.jobs.types.warehouses import FileImportOptions

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext


class SwrveImportJob(FileImportOptions):
    """Swrve Import Activity Data: the raw data export files of an S3 Bucket into swrve_activity."""

    type: Literal["swrve_import"]
    bucket: str = Field(min_length=1, description="Bucket: the S3 bucket of the Swrve raw data export.")
    prefix: str = Field(default="", description="Key prefix of the export files, e.g. app-1234/.")
    file_type: Literal["csv", "json"] = Field(default="json", description="json (JSON lines) or csv.")
    stream: str = Field(default="swrve_activity", pattern=r"^[A-Za-z0-9_.-]+$", description="Lytics stream.")
    aws_conn_id: str = Field(
        default="aws_default", description="Airflow AWS connection: Access Token (login) and Secret Token."
    )

    def add_tasks(self, job: JobContext) -> None:
        from lytics_provider.transfers.s3_to_lytics import S3ToLyticsOperator

        S3ToLyticsOperator(**operator_kwargs(self, S3ToLyticsOperator, task_id="import", job_id=job.job_id))
