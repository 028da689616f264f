"""Azure Blob Storage Import Data: CSV blobs of a container into a Lytics stream.

The engine (order, Since, Starting File, continuous sequence, gzip/zip, PGP, rejects, resume
inside a file, checkpoint per file) is
:class:`~lytics_provider.files.ingest_operator.ObjectFilesToLyticsOperator`; this module names
the store, read with the official ``WasbHook``, and its continuous sequence: blobs named
``timestamp.csv``, imported in timestamp order, each once.
"""

from __future__ import annotations

from typing import Any

from lytics_provider.files.ingest_operator import FileType, ObjectFilesToLyticsOperator
from lytics_provider.files.listing import TIMESTAMP_CSV, AzureBlobStore, FileStore

__all__ = ["AzureBlobToLyticsOperator"]


class AzureBlobToLyticsOperator(ObjectFilesToLyticsOperator):
    """Import Data from ``wasb://{container}/{prefix}*`` (CSV with a header row, or JSON lines).

    :param container: the blob container.
    :param wasb_conn_id: Airflow Azure Blob Storage connection (its ``connection_string`` extra).
    :param file_type: ``csv`` (default) or ``json``; the other arguments are those of
        ``ObjectFilesToLyticsOperator`` (``continuous``: blobs named ``timestamp.csv``).
    """

    store_name = "wasb"
    sequence_naming = TIMESTAMP_CSV

    def __init__(
        self,
        *,
        container: str,
        wasb_conn_id: str = "wasb_default",
        file_type: FileType = "csv",
        **kwargs: Any,
    ) -> None:
        super().__init__(bucket=container, file_type=file_type, **kwargs)
        self.wasb_conn_id = wasb_conn_id

    @property
    def container(self) -> str:
        """The blob container (the engine's ``bucket``)."""
        return self.bucket

    def store(self) -> FileStore:
        return AzureBlobStore(self.bucket, self.wasb_conn_id)
