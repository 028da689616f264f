"""One file of a Lytics stream's events for an object-store export (S3, Azure Blob).

:class:`StreamEventsFile` is mixed into an object-store export operator: it checks the PGP key
before any work and stages a local JSON-lines copy of the events as the export's file (layout,
compression, PGP).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lytics_provider.files.export_events import read_jsonl
from lytics_provider.files.export_layout import FileLayout
from lytics_provider.files.export_stage import encrypt_staged, render_records, write_pages
from lytics_provider.pipeline.compression import compressed_name
from lytics_provider.pipeline.object_files import StagedFile


class StreamEventsFile:
    """Stages a stream's events as the export's file; for object-store export operators."""

    pgp_conn_id: str | None
    file_format: str
    compression: str

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
