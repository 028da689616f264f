"""CSV Export of a Lytics audience to a Google Cloud Storage bucket (CSV or JSON lines).

Same file as the S3 export (see :mod:`lytics_provider.transfers.lytics_to_s3`), uploaded with the
official ``GCSHook`` (:class:`~lytics_provider.files.transports.gcs.GcsTransport`): a resumable
upload in pieces for large files. GCS creates the object only when the upload is finalised, so
the final name never holds part of a file, and a retried task rebuilds the same bytes under the
same name.
"""

from __future__ import annotations

from typing import Any

from lytics_provider.files.export_operator import ObjectStoreExportOperator
from lytics_provider.files.transports import Transport
from lytics_provider.files.transports.gcs import GcsTransport


class LyticsToGCSOperator(ObjectStoreExportOperator):
    """Export the scanned audience to ``gs://{bucket}/{directory}/{filename}``.

    Options as :class:`~lytics_provider.transfers.lytics_to_s3.LyticsToS3Operator`, plus:

    :param gcp_conn_id: Airflow Google Cloud connection.
    """

    def __init__(self, *, gcp_conn_id: str = "google_cloud_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gcp_conn_id = gcp_conn_id

    def transport(self) -> Transport:
        return self._transport or GcsTransport(self.bucket, self.directory, self.gcp_conn_id)
