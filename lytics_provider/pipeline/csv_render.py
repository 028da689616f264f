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

    ``check`` must be a plain value object (a frozen dataclass with ``__call__``), so its
    ``repr`` names the rule and goes into :attr:`signature`.
    """

    columns: tuple[str, ...]
    check: RowCheck | None = None

    @property
    def signature(self) -> str:
        """Identifies the columns and the row check (stored with pre-rendered rows)."""
        text = repr((self.columns, self.check))
        return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()

    def render(self, records: Sequence[Mapping[str, Any]]) -> RenderedRows:
        """Render ``records`` in order; rejected ones are left out and listed with their index."""
        buffer = io.StringIO()
        writerow = csv.writer(buffer, lineterminator="\r\n").writerow
        fmt, plain, columns, check = format_csv_value, PLAIN_CELL_TYPES, self.columns, self.check
        rejects: list[tuple[int, str, dict[str, Any]]] = []
        for index, record in enumerate(records):
            if check is not None:
                try:
                    check(record)
                except RowRejected as exc:
                    rejects.append((index, str(exc), dict(record)))
                    continue
            writerow([cell if type(cell) in plain else fmt(cell) for cell in map(record.get, columns)])
        return RenderedRows(buffer.getvalue(), len(records) - len(rejects), rejects)
