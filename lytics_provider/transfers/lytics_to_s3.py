"""Export a Lytics audience (or a stream's new events) to Amazon S3 as CSV or JSON lines.

The ``deliver`` task of an export DAG: a preset of the file-drop engine
(:class:`~lytics_provider.files.export_operator.ObjectStoreExportOperator`) that streams the
audience snapshot that ``scan`` wrote into one local file (gzip, zip and PGP optional) named from
the audience slug and the run's logical date, and uploads it with the official ``S3Hook``
(:class:`~lytics_provider.files.transports.s3.S3Transport`; S3 publishes an object only when its
upload completes, so the final key never holds part of a file). A retried task rebuilds the same
bytes under the same key.
"""

from __future__ import annotations

from typing import Any

from lytics_provider.files.export_operator import DEFAULT_FILENAME, ObjectStoreExportOperator
from lytics_provider.files.transports import Transport
from lytics_provider.files.transports.s3 import S3Transport
from lytics_provider.operators.stream_file import StreamEventsFile

__all__ = ["DEFAULT_FILENAME", "LyticsStreamToS3Operator", "LyticsToS3Operator"]


class LyticsToS3Operator(ObjectStoreExportOperator):
    """Export the scanned audience to ``s3://{bucket}/{directory}/{filename}``.

    :param bucket: S3 Bucket Name.
    :param directory: key prefix ("Directory").
    :param file_format: ``csv`` (header row, lists joined with commas, maps as JSON) or ``jsonl``.
    :param compression: ``none``, ``gz`` or ``zip``.
    :param filename: name template with ``{slug}``, ``{timestamp}`` (run's logical date, UTC) and ``{ext}``.
    :param pgp_conn_id: ``lytics_pgp`` connection whose ``public_key`` encrypts the file (``.pgp`` appended).
    :param aws_conn_id: Airflow AWS connection.
    """

    def __init__(self, *, aws_conn_id: str | None = "aws_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id

    def transport(self) -> Transport:
        return self._transport or S3Transport(self.bucket, self.directory, self.aws_conn_id)


class LyticsStreamToS3Operator(StreamEventsFile, LyticsToS3Operator):
    """Export Activity Data: the events of a Lytics stream that earlier runs did not deliver, as
    one S3 file a run (all stream fields; the first run: every event).

    The stream position is committed only after S3 stored the object; a retried run writes the
    same key (see :class:`~lytics_provider.operators.stream_file.StreamEventsFile`). Options as
    :class:`LyticsToS3Operator` (``{slug}`` in ``filename`` is the stream), plus:

    :param stream: the Lytics stream whose events are exported.
    """

    def __init__(
        self, *, stream: str, filename: str = "lytics_{slug}_events_{timestamp}.{ext}", **kwargs: Any
    ) -> None:
        super().__init__(filename=filename, **kwargs)
        self.stream = stream
