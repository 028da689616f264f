"""Google Cloud Storage through the official ``GCSHook``.

A resumable upload in ``chunk_size`` pieces for large files; GCS creates the object only when the
upload is finalised, so the name never holds part of a file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from lytics_provider.pipeline.object_files import join_key
from lytics_provider.pipeline.sftp_upload import UploadResult

UPLOAD_CHUNK_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class GcsTransport:
    """Upload to ``gs://{bucket}/{directory}/{name}``.

    :param bucket: GCS bucket name.
    :param directory: object name prefix.
    :param gcp_conn_id: Airflow Google Cloud connection.
    """

    bucket: str
    directory: str = ""
    gcp_conn_id: str = "google_cloud_default"

    def describe(self, name: str) -> str:
        """The object's ``gs://`` URL."""
        return f"gs://{self.bucket}/{join_key(self.directory, name)}"

    def upload(self, local: Path, name: str) -> UploadResult:
        """Upload ``local`` over the object (replacing an earlier one)."""
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        started = time.monotonic()
        GCSHook(gcp_conn_id=self.gcp_conn_id).upload(
            self.bucket,
            join_key(self.directory, name),
            filename=str(local),
            chunk_size=UPLOAD_CHUNK_BYTES,
            num_max_attempts=3,
        )
        return UploadResult(self.describe(name), local.stat().st_size, time.monotonic() - started)
