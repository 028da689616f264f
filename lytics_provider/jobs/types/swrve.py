"""Swrve: Import Activity Data, a preset of the S3 file import into ``swrve_activity``.

Swrve's raw data export writes event files to an S3 bucket; the job reads them with the AWS S3
Access Token and Secret Token of an Airflow ``aws`` connection (JSON lines, gzip recognised by
content), each file once, oldest first.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from lytics_provider.jobs.types.warehouses import FileImportOptions


class SwrveImportJob(FileImportOptions):
    """Swrve Import Activity Data: the raw data export files of an S3 Bucket into swrve_activity."""

    type: Literal["swrve_import"]
    task_operator: ClassVar[str] = "lytics_provider.transfers.s3_to_lytics.S3ToLyticsOperator"
    bucket: str = Field(min_length=1, description="Bucket: the S3 bucket of the Swrve raw data export.")
    prefix: str = Field(default="", description="Key prefix of the export files, e.g. app-1234/.")
    file_type: Literal["csv", "json"] = Field(default="json", description="json (JSON lines) or csv.")
    stream: str = Field(default="swrve_activity", pattern=r"^[A-Za-z0-9_.-]+$", description="Lytics stream.")
    aws_conn_id: str = Field(
        default="aws_default", description="Airflow AWS connection: Access Token (login) and Secret Token."
    )
