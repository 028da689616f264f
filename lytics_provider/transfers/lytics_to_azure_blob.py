"""Export a Lytics audience (JSON lines or CSV), or a stream's new events, to Azure Blob Storage.

Audiences: the ``deliver`` task of an export DAG, a preset of the file-drop engine
(:class:`~lytics_provider.files.export_operator.ObjectStoreExportOperator`): the audience
snapshot that ``scan`` wrote becomes one file per run, named from the audience slug and the run's
logical date, uploaded with the official ``WasbHook`` as staged blocks committed in one call
(:class:`~lytics_provider.files.transports.azure_blob.AzureBlobTransport`), so the blob never
holds part of a file. A retried task rebuilds the same bytes under the same name.

Events: :class:`LyticsStreamToAzureBlobOperator` writes the events of a stream that no earlier
run delivered (:func:`~lytics_provider.files.export_events.download_new_events`) to one file per
run and commits the stream position in the job state only after the upload.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import Context

from lytics_provider.files.export_events import EventsPosition, download_new_events
from lytics_provider.files.export_operator import ObjectStoreExportOperator
from lytics_provider.files.transports import Transport
from lytics_provider.files.transports.azure_blob import AzureBlobTransport
from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.operators.lytics import run_param
from lytics_provider.operators.stream_file import StreamEventsFile
from lytics_provider.pipeline.workarea import JobState, run_dir

__all__ = ["EVENTS_POSITION_KEY", "LyticsStreamToAzureBlobOperator", "LyticsToAzureBlobOperator"]
EVENTS_POSITION_KEY = "events_position"


class LyticsToAzureBlobOperator(ObjectStoreExportOperator):
    """Export the scanned audience to ``wasb://{container}/{directory}/{filename}``.

    :param container: the blob container (it must exist).
    :param directory: blob name prefix.
    :param file_format: ``jsonl`` (newline JSON) or ``csv`` (header row).
    :param compression: ``none``, ``gz`` or ``zip``.
    :param filename: name template with ``{slug}``, ``{timestamp}`` (run's logical date, UTC) and ``{ext}``.
    :param pgp_conn_id: ``lytics_pgp`` connection whose ``public_key`` encrypts the file (``.pgp`` appended).
    :param wasb_conn_id: Airflow Azure Blob Storage connection (its ``connection_string`` extra).
    """

    def __init__(self, *, container: str, wasb_conn_id: str = "wasb_default", **kwargs: Any) -> None:
        kwargs.setdefault("compression", "none")
        super().__init__(bucket=container, **kwargs)
        self.wasb_conn_id = wasb_conn_id

    @property
    def container(self) -> str:
        """The blob container (the engine's ``bucket``)."""
        return self.bucket

    def transport(self) -> Transport:
        return self._transport or AzureBlobTransport(self.bucket, self.directory, self.wasb_conn_id)


class LyticsStreamToAzureBlobOperator(StreamEventsFile, LyticsToAzureBlobOperator):
    """Export Events: the events of a Lytics stream that earlier runs did not deliver, as one file.

    The first run exports every event; later runs only the new ones. CSV columns are the union of
    the events' keys (all fields of the stream). A run without new events uploads nothing. Options
    as :class:`LyticsToAzureBlobOperator` (``{slug}`` in ``filename`` is the stream), plus:

    :param stream: the Lytics stream whose events are exported.
    """

    template_fields: Sequence[str] = ("stream", "bucket", "directory", "filename")

    def __init__(
        self,
        *,
        stream: str,
        filename: str = "lytics_{slug}_events_{timestamp}.{ext}",
        file_format: str = "csv",
        **kwargs: Any,
    ) -> None:
        super().__init__(filename=filename, file_format=file_format, **kwargs)
        self.stream = stream

    def execute(self, context: Context) -> dict[str, Any]:
        transport = self.transport()
        base, name = self.stream_file_name(self.stream, context)
        state = JobState(self.job_id)
        after = EventsPosition.from_state(state.get(EVENTS_POSITION_KEY))
        report: dict[str, Any] = {
            "stream": self.stream,
            "target": transport.describe(name),
            "since_position": after.as_state() if after else None,
            "dry_run": run_param(context, "dry_run"),
        }
        self.require_pgp_key()
        work = run_dir(self.job_id, context["run_id"])
        new = download_new_events(LyticsHook(self.lytics_conn_id), self.stream, work, after)
        report["rows"] = new.count
        if report["dry_run"] or not new.count:
            new.path.unlink()
            self.log.info(
                "%d new events in stream %r%s",
                new.count,
                self.stream,
                " (dry run: nothing sent)" if report["dry_run"] else "; nothing to upload",
            )
            return report
        staged = self.stage_events(new.path, new.columns, work, base, name)
        position = new.position
        if position is None:  # pragma: no cover - every copied event carries its position
            raise RuntimeError(f"{new.count} events copied without a stream position; not uploading")
        result = transport.upload(staged.path, staged.name)
        state.update(**{EVENTS_POSITION_KEY: position.as_state()})
        new.path.unlink()
        staged.path.unlink()
        self.log.info(
            "Exported %d new events of stream %r to %s", staged.rows, self.stream, result.remote_path
        )
        report.update(target=result.remote_path, rows=staged.rows, position=position.as_state())
        return report
