"""CSV Export of a Lytics audience to a Google Cloud Storage bucket (CSV or JSON lines).

Same file as the S3 export (see :mod:`lytics_provider.transfers.lytics_to_s3`), uploaded with the
official ``GCSHook``: a resumable upload in ``chunk_size`` pieces for large files. GCS creates the
object only when the upload is finalised, so the final name never holds part of a file, and a
retried task rebuilds the same bytes under the same name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import Context

from lytics_provider.pipeline.object_files import FileFormat, join_key
from lytics_provider.transfers.lytics_to_s3 import DEFAULT_FILENAME, AudienceExportOperator, _FileExportMixin

UPLOAD_CHUNK_BYTES = 16 * 1024 * 1024


class LyticsToGCSOperator(_FileExportMixin, AudienceExportOperator):
    """Export the scanned audience to ``gs://{bucket}/{directory}/{filename}``.

    Options as :class:`~lytics_provider.transfers.lytics_to_s3.LyticsToS3Operator`.
    """

    template_fields: Sequence[str] = ("fields", "bucket", "directory", "filename")
    url_scheme = "gs"

    def __init__(
        self,
        *,
        bucket: str,
        directory: str = "",
        file_format: FileFormat = "csv",
        compression: str = "gz",
        filename: str = DEFAULT_FILENAME,
        pgp_conn_id: str | None = None,
        gcp_conn_id: str = "google_cloud_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._set_file_options(
            bucket=bucket,
            directory=directory,
            file_format=file_format,
            compression=compression,
            filename=filename,
            pgp_conn_id=pgp_conn_id,
        )
        self.gcp_conn_id = gcp_conn_id

    def deliver(self, context: Context) -> dict[str, Any]:
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        staged = self._stage(
            self.records(),
            self.work_dir,
            self._object_name(self.slug, self.stamp),
            self.field_names(),
            self.log,
        )
        key = join_key(self.directory, staged.name)
        GCSHook(gcp_conn_id=self.gcp_conn_id).upload(
            self.bucket, key, filename=str(staged.path), chunk_size=UPLOAD_CHUNK_BYTES, num_max_attempts=3
        )
        self.log.info(
            "Uploaded %d rows (%d bytes) to gs://%s/%s", staged.rows, staged.bytes, self.bucket, key
        )
        staged.path.unlink()
        return {"target": f"gs://{self.bucket}/{key}", "rows": staged.rows, "bytes": staged.bytes}
