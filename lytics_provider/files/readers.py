"""One reader for the files imported into Lytics streams: CSV (header row first) or JSON lines.

:func:`open_plain` undoes PGP (by the ``.pgp``/``.gpg``/``.asc`` suffix) and then compression
(gzip or zip, recognised by the file's first bytes, so a misnamed file still reads).
:func:`read_rows` yields every data row with its position and, for a row that cannot be imported,
the reason; :func:`valid_records` sends those rows to a rejects file and yields the rest.

CSV rules (:class:`ReadOptions`), the default being what the Lytics CSV import does:

* the header names every column once; an empty or repeated name fails the file;
* ``row_width="exact"``: a row with more *or fewer* cells than the header is rejected (a short
  row usually means a broken quote or a cut file). ``"no_extra"`` keeps short rows (the missing
  trailing cells are absent) and rejects only extra cells;
* ``empty_cells="keep"`` sends an empty cell as ``""``; ``"drop"`` leaves the field out;
* ``numbering="line"`` numbers rejected rows by the line they end on; ``"row"`` by data row.

JSON lines: one object per line; blank lines are skipped; malformed lines and lines that are not
objects are rejected. Records over the 16 KB Lytics limit are rejected for both formats.

``fields`` selects the columns / keys sent (:mod:`lytics_provider.files.field_selection`); a row
holding none of them is passed over like a blank line. The names a file has are noted in a
:class:`~lytics_provider.files.field_selection.FieldsFound` given to :func:`read_rows`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from lytics_provider.files.field_selection import FieldsFound, select_fields
from lytics_provider.hooks.lytics import MAX_RECORD_BYTES
from lytics_provider.pipeline.compression import open_decompressed
from lytics_provider.pipeline.pgp import strip_pgp_suffix
from lytics_provider.pipeline.rejects import RejectsWriter

FileFormat = Literal["csv", "jsonl"]
FORMATS: tuple[str, ...] = ("csv", "jsonl")
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
ID_FIELDS = ("_uid", "email", "user_id", "id")

#: ``(encrypted file, plain target)``: writes the decrypted bytes of the first to the second.
Decrypt = Callable[[Path, Path], None]


class FileImportError(ValueError):
    """A file that cannot be imported as a whole (the message names the file and the fix)."""


@dataclass(frozen=True)
class ReadOptions:
    """How a file's rows are read (see the module docstring for each rule)."""

    file_format: FileFormat = "csv"
    delimiter: str = ","
    row_width: Literal["exact", "no_extra"] = "exact"
    empty_cells: Literal["keep", "drop"] = "keep"
    numbering: Literal["line", "row"] = "line"
    max_record_bytes: int = MAX_RECORD_BYTES
    #: the columns / keys sent to Lytics; empty: every one
    fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.file_format not in FORMATS:
            raise ValueError(f"file format must be one of {', '.join(FORMATS)}, not {self.file_format!r}")
        if len(self.delimiter) != 1:
            raise ValueError(f"delimiter must be one character, not {self.delimiter!r} (use '\\t' for tab)")


@dataclass(frozen=True)
class Row:
    """One data row: ``ordinal`` counts data rows from 1 (the resume position), ``number`` names
    it in rejects; ``record`` is ``None`` when the row is rejected for ``reason``."""

    ordinal: int
    number: int
    record: dict[str, Any] | None
    reason: str | None
    raw: Any


@dataclass(frozen=True)
class Record:
    """A readable record with its JSON size (what the Lytics limits count)."""

    ordinal: int
    record: dict[str, Any]
    size: int


def record_id(record: Any) -> Any:
    """A short identifier of a row for the rejects file (the first identity field present)."""
    if isinstance(record, dict):
        for field in ID_FIELDS:
            if record.get(field) not in (None, ""):
                return record[field]
    return None


@contextmanager
def open_plain(path: Path, name: str, decrypt: Decrypt | None = None) -> Iterator[IO[bytes]]:
    """Open the downloaded ``path`` (remote name ``name``) for reading its plain bytes.

    :param decrypt: how to decrypt a file whose name ends in ``.pgp``/``.gpg``/``.asc``; without
        it such a file fails with the fix (set ``pgp_conn_id``).
    """
    _, encrypted = strip_pgp_suffix(name)
    plain = path
    if encrypted:
        if decrypt is None:
            raise FileImportError(
                f"{name} is PGP encrypted but the job has no PGP private key: set pgp_conn_id to a "
                "connection whose extra holds private_key (and the passphrase as its password)"
            )
        plain = path.with_name(f".{path.name}.plain")
        decrypt(path, plain)
    try:
        with open(plain, "rb") as raw:
            head = raw.read(4)
        compression = "gz" if head.startswith(GZIP_MAGIC) else "zip" if head == ZIP_MAGIC else "none"
        with open_decompressed(plain, compression) as stream:
            yield stream
    finally:
        if encrypted:
            plain.unlink(missing_ok=True)


def read_rows(
    stream: IO[bytes], options: ReadOptions, name: str, found: FieldsFound | None = None
) -> Iterator[Row]:
    """Every data row of a plain file, in order (see :class:`ReadOptions`).

    :param found: notes the file's field names (the CSV header, the JSON records' keys).
    """
    found = found if found is not None else FieldsFound()
    if options.file_format == "csv":
        return _csv_rows(stream, options, name, found)
    return _jsonl_rows(stream, options.fields, found)


def _csv_rows(stream: IO[bytes], options: ReadOptions, name: str, found: FieldsFound) -> Iterator[Row]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.reader(text, delimiter=options.delimiter, strict=False)
    try:
        header = next(reader, None)
        if not header:
            return
        header = [column.strip() for column in header]
        if any(not column for column in header) or len(set(header)) != len(header):
            raise FileImportError(
                f"{name}: the header row has empty or repeated column names {header!r}; fix the header"
            )
        found.add(header)
        width = len(header)
        drop_empty = options.empty_cells == "drop"
        for ordinal, cells in enumerate(reader, start=1):
            number = reader.line_num if options.numbering == "line" else ordinal
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            if len(cells) > width and options.row_width == "no_extra":
                reason = f"too many cells: {len(cells)} for {width} header columns"
                yield Row(ordinal, number, None, reason, cells)
            elif len(cells) != width and options.row_width == "exact":
                reason = f"wrong number of columns: expected {width}, got {len(cells)}"
                yield Row(ordinal, number, None, reason, cells)
            else:
                pairs = zip(header, cells, strict=False)
                record = {k: v for k, v in pairs if v != ""} if drop_empty else dict(pairs)
                record = select_fields(record, options.fields)
                if record or not options.fields:
                    yield Row(ordinal, number, record, None, cells)
    except UnicodeDecodeError as exc:
        raise FileImportError(f"{name}: not UTF-8 text ({exc.reason}); save it as UTF-8") from None
    except csv.Error as exc:
        raise FileImportError(f"{name}: unreadable CSV at line {reader.line_num}: {exc}") from None


def _jsonl_rows(stream: IO[bytes], fields: tuple[str, ...], found: FieldsFound) -> Iterator[Row]:
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            yield Row(number, number, None, "not valid UTF-8", line.decode("utf-8", "replace").rstrip("\r\n"))
            continue
        try:
            value = json.loads(text)
        except ValueError as exc:
            yield Row(number, number, None, f"malformed JSON: {exc}", text.rstrip("\r\n"))
            continue
        if not isinstance(value, dict):
            yield Row(number, number, None, f"not a JSON object (a {type(value).__name__})", value)
            continue
        found.add(value)
        record = select_fields(value, fields)
        if record or not fields:
            yield Row(number, number, record, None, value)


def json_size(record: dict[str, Any], limit: int) -> int:
    """The length of ``record`` as compact JSON; exact, except for a record of strings that is
    far below ``limit`` even if every character needed a six-byte escape: then the length
    without escapes (which is exact for plain ASCII), saving a JSON encoding per CSV row."""
    plain = 1
    for key, value in record.items():
        if not isinstance(value, str):
            return len(json.dumps(record, separators=(",", ":"), default=str).encode())
        plain += len(key) + len(value) + 6
    if plain * 6 <= limit:
        return max(plain, 2)
    return len(json.dumps(record, separators=(",", ":"), default=str).encode())


def valid_records(rows: Iterator[Row], rejects: RejectsWriter, max_record_bytes: int) -> Iterator[Record]:
    """The importable records of ``rows``; every other row goes to ``rejects`` with its reason."""
    for row in rows:
        record, reason, size = row.record, row.reason, 0
        if record is not None:
            size = json_size(record, max_record_bytes)
            if size > max_record_bytes:
                kb, rest = divmod(max_record_bytes, 1024)
                limit = f"{max_record_bytes} B" if rest else f"{kb} KB"
                reason = f"record over the {limit} Lytics limit: {size} bytes"
                record = None
        if record is None:
            rejects.reject(reason or "rejected", row.number, row.raw, id=record_id(row.raw))
            continue
        yield Record(row.ordinal, record, size)
