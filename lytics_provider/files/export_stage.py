"""Write a file drop locally: rendered pages → (compression) → ``.part`` → final name → (PGP).

Pages come from the scan (rendered while it stored them) or are rendered here from the records;
either way the bytes are the same. The file is written under ``.<name>.part`` and renamed when
complete, so an upload never starts from half a file and a retry rebuilds the same bytes.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lytics_provider.files.export_layout import FileLayout, JsonlRowRenderer
from lytics_provider.pipeline.compression import compress_to
from lytics_provider.pipeline.csv_render import CsvRowRenderer, RenderedRows
from lytics_provider.pipeline.gcpause import paused_gc
from lytics_provider.pipeline.progress import Progress
from lytics_provider.pipeline.rejects import RejectsWriter

RENDER_BATCH = 5000


@dataclass(frozen=True)
class StagedExport:
    """A complete local file ready to upload."""

    path: Path
    name: str
    rows: int
    rejected: int
    bytes: int


def render_records(
    records: Iterable[Mapping[str, Any]],
    renderer: CsvRowRenderer | JsonlRowRenderer,
    batch: int = RENDER_BATCH,
) -> Iterator[RenderedRows]:
    """Render ``records`` page by page (``batch`` records each)."""
    iterator = iter(records)
    while chunk := list(itertools.islice(iterator, batch)):
        yield renderer.render(chunk)


def write_pages(
    pages: Iterable[RenderedRows],
    target: Path,
    layout: FileLayout,
    *,
    compression: str,
    inner_name: str,
    rejects: RejectsWriter | None = None,
    log: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    expected: int | None = None,
) -> StagedExport:
    """Write ``pages`` (header first) to ``target`` through ``.<name>.part``; return the staged file.

    ``inner_name`` names the entry of a zip archive. Rejected records go to ``rejects`` with their
    1-based record number; without ``rejects`` a rejected record is an error.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.name}.part")
    progress = Progress(log, "rows written", expected) if log is not None else None
    rows = rejected = number = 0
    with open(part, "wb") as raw, compress_to(raw, compression, inner_name) as stream, paused_gc():
        header = layout.header_text()
        if header:
            stream.write(header.encode("utf-8"))
        for page in pages:
            for index, reason, record in page.rejects:
                if rejects is None:
                    raise ValueError(f"record {number + index + 1}: {reason}")
                rejects.reject(reason, number + index + 1, record, id=record.get("_uid"))
            stream.write(page.text.encode("utf-8"))
            rows += page.rows
            rejected += len(page.rejects)
            number += page.rows + len(page.rejects)
            if progress is not None:
                progress.advance(page.rows + len(page.rejects))
    if progress is not None:
        progress.finish()
    part.replace(target)
    return StagedExport(target, target.name, rows, rejected, target.stat().st_size)


def encrypt_staged(staged: StagedExport, pgp_conn_id: str, final_name: str) -> StagedExport:
    """Encrypt ``staged`` for the public key of the ``lytics_pgp`` connection (PGPHook)."""
    from lytics_provider.hooks.pgp import PGPHook

    target = staged.path.with_name(final_name)
    part = target.with_name(f".{final_name}.part")
    PGPHook(pgp_conn_id).encrypt_file(staged.path, part)
    staged.path.unlink()
    part.replace(target)
    return StagedExport(target, final_name, staged.rows, staged.rejected, target.stat().st_size)
