"""Google Cloud Storage Import Files: CSV / JSON-lines objects into a Lytics stream.

The engine (order, Since, Starting File, continuous sequence, gzip, PGP, rejects, resume inside
a file) is :class:`~lytics_provider.transfers.s3_to_lytics.ObjectFilesToLyticsOperator`; this
module lists and downloads with the official ``GCSHook``. Default stream ``gcs_files``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lytics_provider.pipeline.object_files import ObjectInfo
from lytics_provider.transfers.s3_to_lytics import ObjectFilesToLyticsOperator


class GCSToLyticsOperator(ObjectFilesToLyticsOperator):
    """Import Files from ``gs://{bucket}/{prefix}*`` (``project`` is the Google Project ID)."""

    store_name = "gs"

    def __init__(
        self,
        *,
        gcp_conn_id: str = "google_cloud_default",
        project: str | None = None,
        stream: str = "gcs_files",
        **kwargs: Any,
    ) -> None:
        super().__init__(stream=stream, **kwargs)
        self.gcp_conn_id = gcp_conn_id
        self.project = project

    def _bucket(self) -> Any:
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        return GCSHook(gcp_conn_id=self.gcp_conn_id).get_conn().bucket(self.bucket, user_project=None)

    def list_objects(self) -> Iterable[ObjectInfo]:
        for blob in self._bucket().list_blobs(prefix=self.prefix):
            yield ObjectInfo(blob.name, int(blob.size or 0), blob.updated)

    def download(self, key: str, path: Path) -> None:
        self._bucket().blob(key).download_to_filename(str(path))
