"""Render member records as CSV rows (no header) by the writers' cell rules, rejecting bad rows.

One renderer serves both places a file drop's rows can be made: the ``scan`` task renders each
page as it stores it (the CPU is idle while the next page is on its way), and ``deliver``
renders from the snapshot when no usable pre-rendered rows exist. Both use this class, so the
file is byte-for-byte the same either way. ``signature`` identifies the layout and the row
check; pre-rendered rows are only used when the signature still matches.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lytics_provider.pipeline.writers import PLAIN_CELL_TYPES, format_csv_value

RowCheck = Callable[[Mapping[str, Any]], None]
RowCells = Callable[[Mapping[str, Any]], Sequence[Any]]
RowLines = Callable[[Mapping[str, Any]], Sequence[Sequence[Any]]]


class RowRejected(Exception):
    """A record that cannot be exported; the message is the reason written to the rejects file."""


@dataclass(frozen=True)
class RenderedRows:
    """CSV text for the accepted records and ``(index, reason, record)`` for the rejected ones."""

    text: str
    rows: int
    rejects: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)


@dataclass(frozen=True)
class CsvRowRenderer:
    """CSV rows of ``columns`` read from each record; ``check`` raises :class:`RowRejected`.

    ``check`` (and ``cells``, which makes a record's cells when they are not simply its
    ``columns``) must be plain value objects (frozen dataclasses with ``__call__``), so their
    ``repr`` names the rule and goes into :attr:`signature`. ``lines`` makes several rows of one
    record (e.g. one line per audience); ``rows`` still counts records. ``delimiter`` and
    ``quoting`` are the ``csv`` module's.
    """

    columns: tuple[str, ...]
    check: RowCheck | None = None
    delimiter: str = ","
    quoting: int = csv.QUOTE_MINIMAL
    cells: RowCells | None = None
    lines: RowLines | None = None

    @property
    def signature(self) -> str:
        """Identifies the columns, the row check and the dialect (stored with pre-rendered rows)."""
        if self.delimiter == "," and self.quoting == csv.QUOTE_MINIMAL and self.cells is None:
            text = repr((self.columns, self.check))
        else:
            text = repr((self.columns, self.check, self.delimiter, self.quoting, self.cells))
        if self.lines is not None:
            text += repr(self.lines)
        return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()

    def render(self, records: Sequence[Mapping[str, Any]]) -> RenderedRows:
        """Render ``records`` in order; rejected ones are left out and listed with their index."""
        buffer = io.StringIO()
        writerow = csv.writer(
            buffer, lineterminator="\r\n", delimiter=self.delimiter, quoting=self.quoting
        ).writerow
        fmt, plain, columns, cells = format_csv_value, PLAIN_CELL_TYPES, self.columns, self.cells
        accepted, rejects = split_rejects(records, self.check)
        if self.lines is not None:
            for record in accepted:
                for row in self.lines(record):
                    writerow([cell if type(cell) in plain else fmt(cell) for cell in row])
            return RenderedRows(buffer.getvalue(), len(accepted), rejects)
        for record in accepted:
            row = map(record.get, columns) if cells is None else cells(record)
            writerow([cell if type(cell) in plain else fmt(cell) for cell in row])
        return RenderedRows(buffer.getvalue(), len(accepted), rejects)


def split_rejects(
    records: Sequence[Mapping[str, Any]], check: RowCheck | None
) -> tuple[Sequence[Mapping[str, Any]], list[tuple[int, str, dict[str, Any]]]]:
    """``(records that pass check, [(index, reason, record) of the others])``, order kept."""
    if check is None:
        return records, []
    accepted: list[Mapping[str, Any]] = []
    rejects: list[tuple[int, str, dict[str, Any]]] = []
    for index, record in enumerate(records):
        try:
            check(record)
        except RowRejected as exc:
            rejects.append((index, str(exc), dict(record)))
            continue
        accepted.append(record)
    return accepted, rejects
