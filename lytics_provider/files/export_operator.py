"""The file-drop export engine as the ``deliver`` task of an audience export DAG.

``scan`` → ``deliver`` → ``report``: :class:`FileDropExportOperator` reads the scan's snapshot,
writes one file by its :class:`~lytics_provider.files.export_layout.FileLayout` (using the rows
the scan rendered when the layout matches, else rendering here), compresses it (none, gz, zip),
encrypts it for a ``lytics_pgp`` connection's public key (``.pgp`` appended), checks that every
scanned member is a row or a reject, and places it with a
:mod:`transport <lytics_provider.files.transports>`; a trigger file follows the data file.

Every step is retry-safe: names depend only on the run (:mod:`~lytics_provider.files.export_naming`),
the staged file is rebuilt from the snapshot and each upload replaces its file atomically. A dry run
stages the file and reports it; nothing is uploaded.

Returned report (XCom): ``audience``, ``members``, ``dry_run``, ``rows``, ``rejected``, ``bytes``,
``file_name``, ``target`` (URL or remote path; also as ``remote_path``), ``rejects_file``,
``upload_seconds``, ``fields``; ``trigger_file`` with a trigger; ``staged_file`` on a dry run.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import Context

from lytics_provider.files.export_layout import EXTENSIONS, FileFormat, FileLayout, JsonlRowRenderer
from lytics_provider.files.export_naming import ISO_BASIC_STAMP, NameTemplate, run_moment
from lytics_provider.files.export_preset import FileDropPreset
from lytics_provider.files.export_stage import StagedExport, encrypt_staged, render_records, write_pages
from lytics_provider.files.transports import Transport
from lytics_provider.operators.audience_export import AudienceExportOperator
from lytics_provider.pipeline.csv_render import CsvRowRenderer, RenderedRows
from lytics_provider.pipeline.rejects import RejectsWriter
from lytics_provider.pipeline.snapshot import Snapshot
from lytics_provider.pipeline.workarea import safe_name

DEFAULT_FILENAME = "lytics_{slug}_{timestamp}.{ext}"
Renderer = CsvRowRenderer | JsonlRowRenderer


class FileDropExportOperator(AudienceExportOperator):
    """Write the scanned audience as one file and drop it at a destination.

    Give a ``preset`` (layout, name template, compression, trigger) and a ``transport``, or
    subclass and override :meth:`file_layout`, :meth:`name` and :meth:`transport`.

    :param preset: what makes the file (default: ``fields`` as CSV columns, no compression).
    :param transport: where the file goes.
    :param pgp_conn_id: a ``lytics_pgp`` connection; the file is encrypted for its public key and
        ``.pgp`` is appended to the name.
    """

    ui_color = "#e8f4f8"

    def __init__(
        self,
        *,
        preset: FileDropPreset | None = None,
        transport: Transport | None = None,
        pgp_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.preset = preset or FileDropPreset()
        self._transport = transport
        self.pgp_conn_id = pgp_conn_id

    @property
    def compression(self) -> str:
        """``none``, ``gz`` or ``zip``."""
        return self.preset.compression

    @property
    def layout(self) -> FileLayout | None:
        """The preset's layout (None: decided at run time by :meth:`file_layout`)."""
        return self.preset.layout

    # -- what subclasses (or presets) define ---------------------------------------------------
    def file_layout(self) -> FileLayout:
        """The layout at run time (may read the Lytics schema for the columns)."""
        return self.layout or FileLayout(tuple(self.field_names()))

    def static_layout(self) -> FileLayout | None:
        """The layout when it is known without calling any API, else None."""
        if self.layout is not None:
            return self.layout
        return FileLayout(tuple(self.fields)) if self.fields else None

    def name(self) -> NameTemplate:
        """The file name template."""
        return self.preset.name or NameTemplate(DEFAULT_FILENAME, ISO_BASIC_STAMP)

    def transport(self) -> Transport:
        """Where the files go."""
        if self._transport is None:
            raise ValueError(f"{type(self).__name__} {self.task_id!r} has no transport; pass transport=...")
        return self._transport

    def row_renderer(self) -> CsvRowRenderer | JsonlRowRenderer | None:
        """The renderer the ``scan`` task can render pages with while it stores them.

        None when the layout is only known at run time; ``deliver`` then renders from the
        snapshot. Either way the file is the same.
        """
        layout = self.static_layout()
        return layout.renderer() if layout is not None else None

    # -- engine --------------------------------------------------------------------------------
    def plan(self, context: Context) -> dict[str, Any]:
        """Dry run: stage the file and report it; nothing is uploaded."""
        return self._drop(context, upload=False)

    def deliver(self, context: Context) -> dict[str, Any]:
        """Stage the file, upload it, then the trigger file."""
        report = self._drop(context, upload=True)
        self.delivered_path: str | None = report["remote_path"]
        return report

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the audience in, the file written out (none on a dry run)."""
        from lytics_provider.files.export_lineage import (
            audience_dataset,
            delivered_file_dataset,
            operator_lineage,
        )

        delivered = getattr(self, "delivered_path", None)
        outputs = (
            [delivered_file_dataset(delivered, getattr(self, "sftp_conn_id", None))] if delivered else []
        )
        return operator_lineage([audience_dataset(self.lytics_conn_id, self.slug)], outputs)

    def _drop(self, context: Context, *, upload: bool) -> dict[str, Any]:
        if not self.snapshot_path.is_file():
            raise FileNotFoundError(
                f"snapshot {self.snapshot_path} from task {self.scan_task_id!r} is not on this worker; "
                "LYTICS_DATA_DIR must be a volume shared by every worker"
            )
        layout = self.file_layout()
        base_name, final_name = self.name().render(
            self.audience, self.moment, layout.ext, self.compression, bool(self.pgp_conn_id)
        )
        if self.pgp_conn_id:
            from lytics_provider.hooks.pgp import PGPHook

            PGPHook(self.pgp_conn_id).get_public_key()  # a missing key fails before any work
        transport = self.transport()
        work = self.work_dir / safe_name(self.task_id)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        rejects_path = self.work_dir / f"rejects-{safe_name(self.task_id)}.jsonl"
        staged = self._stage(layout, work, base_name, rejects_path)
        if self.pgp_conn_id:
            staged = encrypt_staged(staged, self.pgp_conn_id, final_name)
        report: dict[str, Any] = {
            "rows": staged.rows,
            "rejected": staged.rejected,
            "bytes": staged.bytes,
            "file_name": staged.name,
            "target": transport.describe(staged.name),
            "remote_path": transport.describe(staged.name),
            "rejects_file": str(rejects_path),
            "fields": list(layout.columns),
            "upload_seconds": 0.0,
        }
        if not upload:
            report["staged_file"] = str(staged.path)
            self.log.info(
                "Dry run: %d rows staged in %s; nothing uploaded to %s",
                staged.rows,
                staged.path,
                report["target"],
            )
            return report
        result = transport.upload(staged.path, staged.name)
        report.update(
            target=result.remote_path, remote_path=result.remote_path, upload_seconds=round(result.seconds, 3)
        )
        if self.preset.trigger is not None:
            trigger_path = self.preset.trigger.write(staged.path, staged.name, staged.rows)
            report["trigger_file"] = transport.upload(trigger_path, trigger_path.name).remote_path
        shutil.rmtree(work, ignore_errors=True)
        self.log.info(
            "Delivered %s: %d rows, %d rejected, %d bytes (%.1f MB/s)",
            result.remote_path,
            staged.rows,
            staged.rejected,
            staged.bytes,
            result.mb_per_second,
        )
        return report

    def _stage(self, layout: FileLayout, work: Path, base_name: str, rejects_path: Path) -> StagedExport:
        from lytics_provider.pipeline.compression import compressed_name

        renderer = layout.renderer()
        target = work / compressed_name(base_name, self.compression)
        with (
            Snapshot(self.snapshot_path) as snapshot,
            RejectsWriter(rejects_path, logger=self.log) as rejects,
        ):
            pages = snapshot.rendered_pages(renderer.signature)
            if pages is not None:
                self.log.info("Using the rows the scan rendered")
            else:
                pages = self._render_rows(snapshot, renderer)
            staged = write_pages(
                pages,
                target,
                layout,
                compression=self.compression,
                inner_name=base_name,
                rejects=rejects,
                log=self.log,
                expected=snapshot.count(),
            )
        expected = self.scanned_members
        if expected is not None and staged.rows + staged.rejected != expected:
            raise RuntimeError(
                f"{staged.rows} rows written + {staged.rejected} rejected != {expected} members "
                "scanned; not uploading"
            )
        return staged

    def _render_rows(self, snapshot: Snapshot, renderer: Renderer) -> Iterator[RenderedRows]:
        """Rows rendered here, when the scan did not render them."""
        return self._render_snapshot(snapshot, renderer)

    @staticmethod
    def _render_snapshot(snapshot: Snapshot, renderer: Renderer) -> Iterator[RenderedRows]:
        for records in snapshot.iter_record_batches():
            yield renderer.render(records)


class SftpFileDropOperator(FileDropExportOperator):
    """A file drop on an SFTP server (``.<name>.part`` + rename; see ``pipeline.sftp_upload``).

    :param sftp_conn_id: Airflow SFTP connection of the destination server.
    :param folder: remote folder; empty for the login directory.
    """

    template_fields: Sequence[str] = ("fields", "folder")

    def __init__(self, *, sftp_conn_id: str, folder: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sftp_conn_id = sftp_conn_id
        self.folder = folder

    def transport(self) -> Transport:
        from lytics_provider.files.transports.sftp import SftpTransport

        return self._transport or SftpTransport(self.sftp_conn_id, self.folder)


class ObjectStoreExportOperator(FileDropExportOperator):
    """A CSV or JSON-lines file in an object-store bucket (S3, GCS, Azure Blob).

    :param bucket: bucket (or container) name.
    :param directory: key prefix ("Directory").
    :param file_format: ``csv`` (header row, lists joined with commas, maps as JSON) or ``jsonl``.
    :param compression: ``none``, ``gz`` or ``zip``.
    :param filename: name template with ``{slug}``, ``{timestamp}`` (run's logical date, UTC,
        ``YYYYmmddTHHMMSSZ``) and ``{ext}`` (see ``files.export_naming.NameTemplate``).
    """

    template_fields: Sequence[str] = ("fields", "bucket", "directory", "filename")

    def __init__(
        self,
        *,
        bucket: str,
        directory: str = "",
        file_format: FileFormat = "csv",
        compression: str = "gz",
        filename: str = DEFAULT_FILENAME,
        **kwargs: Any,
    ) -> None:
        super().__init__(preset=FileDropPreset(compression=compression), **kwargs)
        if file_format not in ("csv", "jsonl"):
            raise ValueError(f"file_format {file_format!r} is not supported; use 'csv' or 'jsonl'")
        self.bucket = bucket
        self.directory = directory
        self.file_format: FileFormat = file_format
        self.filename = filename

    def file_layout(self) -> FileLayout:
        return self.layout or FileLayout(tuple(self.field_names()), file_format=self.file_format)

    def static_layout(self) -> FileLayout | None:
        if self.layout is not None:
            return self.layout
        return FileLayout(tuple(self.fields), file_format=self.file_format) if self.fields else None

    def name(self) -> NameTemplate:
        return self.preset.name or NameTemplate(self.filename, ISO_BASIC_STAMP)

    def stream_file_name(self, stream: str, context: Context) -> tuple[str, str]:
        """A stream export's file name (``{slug}`` is the stream): the base name and the final one."""
        return self.name().render(
            {"slug": stream},
            run_moment(context),
            EXTENSIONS[self.file_format],
            self.compression,
            bool(self.pgp_conn_id),
        )

    def _render_rows(self, snapshot: Snapshot, renderer: Renderer) -> Iterator[RenderedRows]:
        """Rows from :meth:`records`, the record stream every audience export reads."""
        return render_records(self.records(), renderer)
