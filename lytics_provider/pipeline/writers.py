"""Streaming CSV and JSON-lines writers over a binary file object.

CSV cell rules (one place, used by every CSV export):

* ``None`` → empty cell;
* lists, tuples and sets → their items joined with ``,`` (each item formatted by these rules;
  the ``csv`` module quotes the cell, so the commas never split columns);
* maps → compact JSON (keys in their original order);
* ``True``/``False`` → ``true``/``false``;
* anything else → ``str(value)``.

Rows are written as RFC 4180 CSV (``\\r\\n`` line ends, minimal quoting) in UTF-8 without a BOM.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any, Self

BUFFER_BYTES = 1024 * 1024
# Cells the csv module already renders by these rules (None → "", numbers → str()).
PLAIN_CELL_TYPES = frozenset({str, int, float, type(None)})


def format_csv_value(value: Any) -> str:
    """Render one value as CSV cell text (see the module rules)."""
    kind = type(value)
    if kind is str:
        return value
    if value is None:
        return ""
    if kind is list:
        return ",".join(item if type(item) is str else format_csv_value(item) for item in value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(format_csv_value(item) for item in value)
    return str(value)


class _TextSink:
    """A UTF-8 text layer over a binary file object that never closes the object it wraps."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.counter = _CountingWriter(raw)
        self.text = io.TextIOWrapper(
            io.BufferedWriter(self.counter, BUFFER_BYTES),  # type: ignore[arg-type]
            encoding="utf-8",
            newline="",
            write_through=False,
        )
        self.closed = False

    def flush(self) -> None:
        self.text.flush()

    def detach(self) -> None:
        """Flush everything to the wrapped object and let go of it (left open); idempotent."""
        if self.closed:
            return
        self.closed = True
        self.text.flush()
        buffered = self.text.detach()
        buffered.flush()
        buffered.detach()


class _CountingWriter(io.RawIOBase):
    """A raw writer forwarding to ``target`` while counting bytes."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.bytes = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.target.write(view)
        self.bytes += len(view)
        return len(view)


class _StreamingWriter:
    """What the CSV and JSON-lines writers share: the text sink over the binary target, the
    row count, the bytes written, and closing (also as a context manager)."""

    def __init__(self, target: IO[bytes]) -> None:
        self._sink = _TextSink(target)
        self.rows = 0

    @property
    def bytes_written(self) -> int:
        """Bytes handed to the target so far (after :meth:`close`, the exact file size)."""
        return self._sink.counter.bytes

    def close(self) -> None:
        """Flush everything to the target (which is left open)."""
        self._sink.detach()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CsvWriter(_StreamingWriter):
    """Write dict rows as CSV with a fixed header, streaming to a binary file object.

    ``columns`` are the keys read from each record; ``header`` (default: the columns) is the
    first line. Use as a context manager, or call :meth:`close` (the target stays open).
    """

    def __init__(
        self, target: IO[bytes], columns: Sequence[str], header: Sequence[str] | None = None
    ) -> None:
        if header is not None and len(header) != len(columns):
            raise ValueError(f"header has {len(header)} names for {len(columns)} columns")
        super().__init__(target)
        self.columns = list(columns)
        self._writer = csv.writer(self._sink.text, lineterminator="\r\n")
        self._writer.writerow(list(header) if header is not None else self.columns)

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record (missing keys become empty cells)."""
        self.write_cells([record.get(name) for name in self.columns])

    def write_cells(self, cells: Sequence[Any]) -> None:
        """Append one row given as already ordered cells."""
        plain = PLAIN_CELL_TYPES
        self._writer.writerow([cell if type(cell) in plain else format_csv_value(cell) for cell in cells])
        self.rows += 1

    def write_rendered(self, text: str, rows: int) -> None:
        """Append ``rows`` rows already rendered as CSV text (see ``pipeline.csv_render``)."""
        self._sink.text.write(text)
        self.rows += rows

    def write_all(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Append every record; return how many were written."""
        before = self.rows
        for record in records:
            self.write(record)
        return self.rows - before


class JsonlWriter(_StreamingWriter):
    """Write records as newline-delimited JSON (one compact object per line), streaming."""

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record."""
        self._sink.text.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str))
        self._sink.text.write("\n")
        self.rows += 1
