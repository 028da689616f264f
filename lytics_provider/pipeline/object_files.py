"""Files exported from Lytics to object stores (S3, GCS): naming and staging.

:func:`stage_file` streams records into one local CSV or JSON-lines file (optionally
gzip, then PGP) under a deterministic name, written to ``.<name>.part`` and renamed when complete,
so a retried task rebuilds the same bytes and an upload never starts from half a file.
(Imports read and list files with :mod:`lytics_provider.files.readers` and
:mod:`lytics_provider.files.listing`.)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from lytics_provider.pipeline.compression import compress_to
from lytics_provider.pipeline.rejects import RejectsWriter
from lytics_provider.pipeline.writers import CsvWriter, JsonlWriter

FileFormat = Literal["csv", "jsonl"]
EXTENSIONS = {"csv": "csv", "jsonl": "json"}


class RowError(ValueError):
    """A record that cannot be written; the message says which field and why."""


# -- naming ------------------------------------------------------------------------------------
def join_key(directory: str | None, name: str) -> str:
    """``directory/name`` for an object key (no leading slash, no doubled slashes)."""
    directory = (directory or "").strip("/")
    return f"{directory}/{name}" if directory else name


# -- export staging ----------------------------------------------------------------------------
@dataclass(frozen=True)
class StagedFile:
    """A complete local file ready to upload."""

    path: Path
    name: str
    rows: int
    rejected: int
    bytes: int


def stage_file(
    records: Iterable[Mapping[str, Any]],
    directory: Path,
    name: str,
    *,
    file_format: FileFormat,
    columns: Sequence[str],
    header: Sequence[str] | None = None,
    to_row: Callable[[Mapping[str, Any]], Sequence[Any] | Mapping[str, Any]] | None = None,
    compression: str = "none",
    pgp_public_key: str | None = None,
    rejects: RejectsWriter | None = None,
    id_field: str = "_uid",
) -> StagedFile:
    """Write ``records`` to ``directory/name`` (streamed), then encrypt if a public key is given.

    ``to_row`` turns a record into cells (CSV) or an object (JSON lines); it may raise
    :class:`RowError` (or ``ValueError``) to reject the record, which goes to ``rejects`` with the
    message (without ``rejects`` the error propagates). Default rows: the ``columns`` of each record.
    """
    directory.mkdir(parents=True, exist_ok=True)
    plain_name = name[: -len(".pgp")] if pgp_public_key and name.endswith(".pgp") else name
    part = directory / f".{plain_name}.part"
    rows = rejected = 0
    with open(part, "wb") as raw, compress_to(raw, compression, plain_name.removesuffix(".zip")) as stream:
        writer: CsvWriter | JsonlWriter
        writer = CsvWriter(stream, columns, header) if file_format == "csv" else JsonlWriter(stream)
        for number, record in enumerate(records, start=1):
            try:
                row = to_row(record) if to_row else _default_row(record, columns, file_format)
            except ValueError as exc:
                if rejects is None:
                    raise
                rejects.reject(str(exc), number, dict(record), record.get(id_field))
                rejected += 1
                continue
            if file_format == "csv":
                if isinstance(row, Mapping):
                    writer.write(row)
                else:
                    writer.write_cells(row)  # type: ignore[union-attr]
            else:
                writer.write(row)  # type: ignore[arg-type]
            rows += 1
        writer.close()
    if pgp_public_key:
        from lytics_provider.pipeline.pgp import encrypt_file, encrypted_name

        final = directory / encrypted_name(plain_name)
        tmp = directory / f".{final.name}.part"
        encrypt_file(pgp_public_key, part, tmp)
        part.unlink()
        os.replace(tmp, final)
    else:
        final = directory / plain_name
        os.replace(part, final)
    return StagedFile(final, final.name, rows, rejected, final.stat().st_size)


def _default_row(record: Mapping[str, Any], columns: Sequence[str], file_format: FileFormat) -> Any:
    if file_format == "csv":
        return record
    return {name: record.get(name) for name in columns if name in record}
