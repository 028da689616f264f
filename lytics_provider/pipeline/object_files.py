"""Files moved between Lytics and object stores (S3, GCS): naming, staging, listing and reading.

Exports: :func:`stage_file` streams records into one local CSV or JSON-lines file (optionally
gzip, then PGP) under a deterministic name, written to ``.<name>.part`` and renamed when complete,
so a retried task rebuilds the same bytes and an upload never starts from half a file.

Imports: :func:`select_objects` orders a listing the way the Lytics file imports do: only keys
under **Prefix**, last-modified at or after **Since**, from **Starting File** on (inclusive),
sorted by date (ties by name) and never older than the last file already imported. With the
continuous sequence (``prefix_timestamp.json``), the order is the timestamp in the name.
:func:`read_records` streams a downloaded file's rows (PGP and gzip undone first); rows that
cannot be read go to the rejects file with the reason.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from lytics_provider.pipeline.compression import compress_to
from lytics_provider.pipeline.rejects import RejectsWriter
from lytics_provider.pipeline.writers import CsvWriter, JsonlWriter

FileFormat = Literal["csv", "jsonl"]
EXTENSIONS = {"csv": "csv", "jsonl": "json"}
GZIP_MAGIC = b"\x1f\x8b"
_SEQUENCE = re.compile(r"^(?P<prefix>.*)_(?P<ts>\d{8,17}|\d{4}-\d{2}-\d{2}T[\d:.]+Z?)\.json(?:l)?(?:\.gz)?$")


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


# -- import listing ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ObjectInfo:
    """One listed object."""

    key: str
    size: int
    updated: datetime


def parse_since(text: str | None) -> datetime | None:
    """**Since** as the Lytics form has it (``yyyy/mm/dd HH:MM/SS``), or ``yyyy/mm/dd``, or RFC 3339."""
    if not text:
        return None
    value = text.strip()
    for pattern in ("%Y/%m/%d %H:%M/%S", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d"):
        try:
            return datetime.strptime(value, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"since {text!r} is not a date: use 'yyyy/mm/dd HH:MM/SS' (e.g. 2026/01/31 08:00/00) or RFC 3339"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def sequence_timestamp(key: str) -> str | None:
    """The timestamp part of a continuous-import name ``prefix_timestamp.json``, else ``None``."""
    match = _SEQUENCE.match(key.rsplit("/", 1)[-1])
    return match.group("ts") if match else None


def _is_pgp(key: str) -> bool:
    return key.lower().endswith((".pgp", ".gpg", ".asc"))


def select_objects(
    objects: Iterable[ObjectInfo],
    *,
    prefix: str = "",
    since: datetime | None = None,
    starting_file: str | None = None,
    last_file: Mapping[str, Any] | None = None,
    continuous: bool = False,
) -> tuple[list[ObjectInfo], list[str]]:
    """Objects to import in order, and keys skipped with why (for the log).

    ``last_file`` is the state committed after the previous run (``{"key", "updated"}``);
    only objects that sort after it are returned.
    """
    skipped: list[str] = []
    chosen: list[tuple[Any, ObjectInfo]] = []
    for obj in objects:
        if obj.key.endswith("/") or not obj.key.startswith(prefix):
            continue
        if continuous:
            stamp = sequence_timestamp(obj.key.removesuffix(".pgp").removesuffix(".gpg"))
            if stamp is None:
                skipped.append(f"{obj.key}: not named prefix_timestamp.json (continuous import)")
                continue
            order: Any = (stamp, obj.key)
        else:
            order = (obj.updated, obj.key)
        if since is not None and obj.updated < since:
            continue
        chosen.append((order, obj))
    chosen.sort(key=lambda pair: pair[0])
    ordered = [obj for _, obj in chosen]
    if starting_file:
        keys = [o.key for o in ordered]
        start = starting_file if starting_file in keys else join_key(prefix.rsplit("/", 1)[0], starting_file)
        if start in keys:
            ordered = ordered[keys.index(start) :]
        else:
            ordered = [o for o in ordered if o.key.rsplit("/", 1)[-1] >= starting_file.rsplit("/", 1)[-1]]
    if last_file:
        keys = [o.key for o in ordered]
        if last_file.get("key") in keys:
            ordered = ordered[keys.index(last_file["key"]) + 1 :]
        elif not continuous and last_file.get("updated"):
            after = datetime.fromisoformat(last_file["updated"])
            ordered = [o for o in ordered if (o.updated, o.key) > (after, last_file["key"])]
        elif continuous:
            last_stamp = sequence_timestamp(last_file["key"]) or ""
            ordered = [o for o in ordered if (sequence_timestamp(o.key) or "") > last_stamp]
    return ordered, skipped


# -- import reading ----------------------------------------------------------------------------
@contextmanager
def open_plain(
    path: Path, private_key: str | None = None, passphrase: str | None = None
) -> Iterator[IO[bytes]]:
    """Open a downloaded object for reading its plain bytes: PGP decrypted, gzip undone.

    PGP is recognised by the ``.pgp``/``.gpg``/``.asc`` suffix; gzip by its magic bytes.
    """
    decrypted: Path | None = None
    if _is_pgp(path.name):
        if not private_key:
            raise ValueError(
                f"{path.name} is PGP encrypted but the job has no PGP private key: set pgp_conn_id "
                "to a connection whose extra holds private_key (and the passphrase as its password)"
            )
        from lytics_provider.pipeline.pgp import decrypt_file

        decrypted = path.with_name(f".{path.name}.plain")
        decrypt_file(private_key, passphrase, path, decrypted)
        path = decrypted
    try:
        with open(path, "rb") as raw:
            head = raw.read(2)
            raw.seek(0)
            if head == GZIP_MAGIC:
                import gzip

                with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                    yield stream  # type: ignore[misc]
            else:
                yield raw
    finally:
        if decrypted is not None:
            decrypted.unlink(missing_ok=True)


def read_records(
    stream: IO[bytes], file_format: FileFormat, source: str, rejects: RejectsWriter | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(row_number, record)`` for every readable row; bad rows go to ``rejects``.

    CSV needs a header row (CSV without one is not supported); a row with more cells than the
    header is rejected. JSON is one object per line (blank lines are skipped).
    """
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    if file_format == "csv":
        reader = csv.reader(text)
        header = next(reader, None)
        if not header:
            return
        if len(set(header)) != len(header):
            raise ValueError(
                f"{source}: the CSV header repeats a column name; every column needs its own name"
            )
        width = len(header)
        for number, cells in enumerate(reader, start=1):
            if not cells:
                continue
            if len(cells) > width:
                _reject(rejects, f"too many cells: {len(cells)} for {width} header columns", number, cells)
                continue
            yield number, {name: value for name, value in zip(header, cells, strict=False) if value != ""}
        return
    for number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError as exc:
            _reject(rejects, f"not JSON: {exc.msg} at column {exc.colno}", number, line[:200])  # type: ignore[attr-defined]
            continue
        if not isinstance(doc, dict):
            _reject(rejects, "not a JSON object: each line must be one object", number, doc)
            continue
        yield number, doc


def _reject(rejects: RejectsWriter | None, reason: str, number: int, record: Any) -> None:
    if rejects is None:
        raise ValueError(f"row {number}: {reason}")
    rejects.reject(reason, number, record)
