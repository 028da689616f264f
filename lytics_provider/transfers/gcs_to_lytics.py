"""Google Cloud Storage Import Files: CSV / JSON-lines objects into a Lytics stream.

The engine (order, Since, Starting File, gzip/zip, PGP, rejects, resume inside a file) is
:class:`~lytics_provider.files.ingest_operator.ObjectFilesToLyticsOperator`; this module names
the store, read with the official ``GCSHook`` in the job's Google Project. Default stream
``gcs_files``. The GCS **Continuous Import** is the job's schedule ("to import continuously",
looking for new files every File Import Frequency): a run takes the new files by date, whatever
their names, as without it (no ``prefix_timestamp.json`` sequence, which is the S3 import's).
"""

from __future__ import annotations

from typing import Any

from lytics_provider.files.ingest_operator import ObjectFilesToLyticsOperator
from lytics_provider.files.listing import FileStore, GCSStore


class GCSToLyticsOperator(ObjectFilesToLyticsOperator):
    """Import Files from ``gs://{bucket}/{prefix}*`` (``project`` is the Google Project ID).

    :param gcp_conn_id: Google Cloud connection.
    :param project: Google Project ID the storage client works in (default: the connection's).
    :param stream: Lytics stream, default ``gcs_files``.
    """

    store_name = "gs"
    sequence_naming = None

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

    def store(self) -> FileStore:
        return GCSStore(self.bucket, self.gcp_conn_id, self.project)
