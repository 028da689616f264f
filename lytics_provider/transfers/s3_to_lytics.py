"""Import CSV / JSON-lines files from Amazon S3 into a Lytics stream.

The file-import engine shared with GCS is
:class:`~lytics_provider.files.ingest_operator.ObjectFilesToLyticsOperator` (order, Since,
Starting File, continuous sequence, gzip/zip, PGP, rejects, resume inside a file); this module
names the store: the bucket, read with the official ``S3Hook``. A continuous import stops when
the next ``prefix_timestamp.json`` file is missing, as Lytics documents
(:mod:`lytics_provider.files.sequence_stop`).
"""

from __future__ import annotations

from typing import Any

from lytics_provider.files.ingest_operator import ObjectFilesToLyticsOperator
from lytics_provider.files.listing import FileStore, S3Store

__all__ = ["ObjectFilesToLyticsOperator", "S3ToLyticsOperator"]


class S3ToLyticsOperator(ObjectFilesToLyticsOperator):
    """Import Audiences & Activity Data (CSV) / Custom Data (JSON) from S3 (official ``S3Hook``).

    :param aws_conn_id: AWS connection; the other arguments are those of ``ObjectFilesToLyticsOperator``.
    """

    store_name = "s3"
    stops_without_next_file = True

    def __init__(self, *, aws_conn_id: str | None = "aws_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id

    def store(self) -> FileStore:
        return S3Store(self.bucket, self.aws_conn_id)
