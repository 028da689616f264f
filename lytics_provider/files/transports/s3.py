"""Amazon S3 through the official ``S3Hook``.

boto3's managed transfer uploads in one PUT, or multipart above 8 MB; S3 publishes an object only
when its upload completes, so the key never holds part of a file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from lytics_provider.pipeline.object_files import join_key
from lytics_provider.pipeline.sftp_upload import UploadResult


@dataclass(frozen=True)
class S3Transport:
    """Upload to ``s3://{bucket}/{directory}/{name}``.

    :param bucket: S3 bucket name.
    :param directory: key prefix.
    :param aws_conn_id: Airflow AWS connection.
    """

    bucket: str
    directory: str = ""
    aws_conn_id: str | None = "aws_default"

    def describe(self, name: str) -> str:
        """The object's ``s3://`` URL."""
        return f"s3://{self.bucket}/{join_key(self.directory, name)}"

    def upload(self, local: Path, name: str) -> UploadResult:
        """Upload ``local`` over the key (replacing an earlier object)."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        started = time.monotonic()
        key = join_key(self.directory, name)
        S3Hook(aws_conn_id=self.aws_conn_id).load_file(local, key, self.bucket, replace=True)
        return UploadResult(self.describe(name), local.stat().st_size, time.monotonic() - started)
