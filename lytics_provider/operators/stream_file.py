"""One file of a Lytics stream's new events per run, for an object-store export (S3, Azure Blob).

:class:`StreamEventsFile` is mixed into an object-store export operator: each run writes the events
of the stream that no earlier run delivered
(:class:`~lytics_provider.operators.stream_position.NewStreamEvents`; the first run: every event)
to one file (layout, compression, PGP) named from the stream and the
run's logical date, and commits the stream position only after the upload. A retried run writes
the same name again, so the bucket never holds a window twice; a run without new events uploads
nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import Context

from lytics_provider.files.export_events import read_jsonl
from lytics_provider.files.export_layout import FileLayout
from lytics_provider.files.export_stage import encrypt_staged, render_records, write_pages
from lytics_provider.operators.lytics import run_param
from lytics_provider.operators.stream_position import NewStreamEvents
from lytics_provider.pipeline.compression import compressed_name
from lytics_provider.pipeline.object_files import StagedFile
from lytics_provider.pipeline.workarea import run_dir

if TYPE_CHECKING:
    from lytics_provider.files.transports import Transport


class StreamEventsFile(NewStreamEvents):
    """Exports a stream's new events as one file a run; for object-store export operators.

    CSV columns are the union of the events' keys (all fields of the stream), found in a first
    pass over a local JSON-lines copy (so memory stays bounded); JSON lines keeps each event's keys
    in that column order. ``{slug}`` in ``filename`` is the stream. The operator sets ``stream``
    (and the object-store export's options) in its ``__init__``.
    """

    template_fields: Sequence[str] = ("stream", "bucket", "directory", "filename")

    pgp_conn_id: str | None
    file_format: str
    compression: str
    log: Any

    if TYPE_CHECKING:  # the object-store export operator's

        def transport(self) -> Transport: ...

        def stream_file_name(self, stream: str, context: Context) -> tuple[str, str]: ...

    def execute(self, context: Context) -> dict[str, Any]:
        transport = self.transport()
        base, name = self.stream_file_name(self.stream, context)
        after = self.committed_position()
        report: dict[str, Any] = {
            "stream": self.stream,
            "target": transport.describe(name),
            "since_position": after.as_state() if after else None,
            "dry_run": run_param(context, "dry_run"),
        }
        self.require_pgp_key()
        new = self.download_new(context, after)
        report["rows"] = new.count
        if report["dry_run"] or not new.count or new.position is None:
            new.path.unlink()
            self.log.info(
                "%d new events in stream %r%s",
                new.count,
                self.stream,
                " (dry run: nothing sent)" if report["dry_run"] else "; nothing to upload",
            )
            return report
        staged = self.stage_events(new.path, new.columns, run_dir(self.job_id, context["run_id"]), base, name)
        result = transport.upload(staged.path, staged.name)
        self.commit_position(new.position.as_state())
        new.path.unlink()
        staged.path.unlink()
        self.log.info(
            "Exported %d new events of stream %r to %s", staged.rows, self.stream, result.remote_path
        )
        report.update(target=result.remote_path, rows=staged.rows, position=new.position.as_state())
        return report

    def require_pgp_key(self) -> None:
        """Read the PGP public key when the export encrypts, so a missing key fails before any work."""
        if self.pgp_conn_id:
            from lytics_provider.hooks.pgp import PGPHook

            PGPHook(self.pgp_conn_id).get_public_key()

    def stage_events(
        self, events: Path, columns: Sequence[str], work: Path, base: str, name: str
    ) -> StagedFile:
        """The events of the JSON-lines file ``events`` as the export's file, encrypted when set.

        :param events: the local JSON-lines copy of the events.
        :param columns: the file's columns.
        :param work: the run folder (the file is staged under ``staged/``).
        :param base: the file's name before compression and encryption.
        :param name: the file's final name.
        """
        layout = FileLayout(tuple(columns), file_format=self.file_format)
        staged = write_pages(
            render_records(read_jsonl(events), layout.renderer()),
            work / "staged" / compressed_name(base, self.compression),
            layout,
            compression=self.compression,
            inner_name=base,
        )
        if self.pgp_conn_id:
            staged = encrypt_staged(staged, self.pgp_conn_id, name)
        return staged
