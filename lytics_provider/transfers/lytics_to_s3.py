"""Export a Lytics audience (or a stream's events) to Amazon S3 as CSV or JSON lines.

The ``deliver`` task of an export DAG: a preset of the file-drop engine
(:class:`~lytics_provider.files.export_operator.ObjectStoreExportOperator`) that streams the
audience snapshot that ``scan`` wrote into one local file (gzip, zip and PGP optional) named from
the audience slug and the run's logical date, and uploads it with the official ``S3Hook``
(:class:`~lytics_provider.files.transports.s3.S3Transport`; S3 publishes an object only when its
upload completes, so the final key never holds part of a file). A retried task rebuilds the same
bytes under the same key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import Context

from lytics_provider.files.export_events import download_events
from lytics_provider.files.export_operator import DEFAULT_FILENAME, ObjectStoreExportOperator
from lytics_provider.files.transports import Transport
from lytics_provider.files.transports.s3 import S3Transport
from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.operators.lytics import run_param
from lytics_provider.operators.stream_file import StreamEventsFile
from lytics_provider.pipeline.workarea import run_dir

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
    """Export Activity Data: every event of a Lytics stream to one S3 file (all stream fields).

    CSV columns are the union of the event keys, found in a first pass over a local JSON-lines
    copy (so memory stays bounded); JSON lines keeps each event's keys in that column order.
    Options as :class:`LyticsToS3Operator` (``{slug}`` in ``filename`` is the stream), plus:

    :param stream: the Lytics stream whose events are exported.
    """

    template_fields: Sequence[str] = ("stream", "bucket", "directory", "filename")

    def __init__(
        self, *, stream: str, filename: str = "lytics_{slug}_events_{timestamp}.{ext}", **kwargs: Any
    ) -> None:
        super().__init__(filename=filename, **kwargs)
        self.stream = stream

    def execute(self, context: Context) -> dict[str, Any]:
        transport = self.transport()
        base, name = self.stream_file_name(self.stream, context)
        if run_param(context, "dry_run"):
            return {"dry_run": True, "stream": self.stream, "target": transport.describe(name)}
        self.require_pgp_key()
        work = run_dir(self.job_id, context["run_id"])
        local, columns = download_events(LyticsHook(self.lytics_conn_id), self.stream, work)
        staged = self.stage_events(local, columns, work, base, name)
        result = transport.upload(staged.path, staged.name)
        local.unlink()
        staged.path.unlink()
        self.log.info("Exported %d events of stream %r to %s", staged.rows, self.stream, result.remote_path)
        return {"stream": self.stream, "target": result.remote_path, "rows": staged.rows}
