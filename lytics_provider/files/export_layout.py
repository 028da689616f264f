"""What a file drop's rows look like: columns, header names, delimiter, quoting, row rules.

A :class:`FileLayout` turns into a row renderer (:class:`~lytics_provider.pipeline.csv_render.
CsvRowRenderer` for delimited text, :class:`JsonlRowRenderer` for JSON lines). The ``scan`` task
can render pages with the same renderer while it stores them (the fast path of the SFTP file
drops), so the file is byte-for-byte the same whichever task rendered the rows.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from lytics_provider.pipeline.csv_render import (
    CsvRowRenderer,
    RenderedRows,
    RowCells,
    RowCheck,
    RowLines,
    split_rejects,
)
from lytics_provider.pipeline.writers import format_csv_value

FileFormat = Literal["csv", "jsonl"]
Quoting = Literal["minimal", "all"]
QUOTING = {"minimal": csv.QUOTE_MINIMAL, "all": csv.QUOTE_ALL}
EXTENSIONS = {"csv": "csv", "jsonl": "json"}


@dataclass(frozen=True)
class JsonlRowRenderer:
    """JSON lines of the ``columns`` each record has (in column order); ``check`` as for CSV."""

    columns: tuple[str, ...]
    check: RowCheck | None = None

    @property
    def signature(self) -> str:
        """Identifies the columns and the row check."""
        text = repr(("jsonl", self.columns, self.check))
        return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()

    def render(self, records: Sequence[Mapping[str, Any]]) -> RenderedRows:
        """Render ``records`` in order; rejected ones are left out and listed with their index."""
        lines: list[str] = []
        dumps, columns = json.dumps, self.columns
        accepted, rejects = split_rejects(records, self.check)
        for record in accepted:
            row = {name: record.get(name) for name in columns if name in record}
            lines.append(dumps(row, separators=(",", ":"), ensure_ascii=False, default=str))
            lines.append("\n")
        return RenderedRows("".join(lines), len(accepted), rejects)


@dataclass(frozen=True)
class KeyValueCells:
    """Two cells per record: the identifier, then ``field=value`` pairs joined by ``pair_join``.

    The shape of the key-value partner feeds (``id<TAB>f1=v|f2=v``). Empty values are left out;
    lists are comma-joined and maps are JSON, as in every CSV cell.
    """

    id_field: str
    fields: tuple[str, ...]
    pair_join: str = "|"
    key_value: str = "="

    def __call__(self, record: Mapping[str, Any]) -> list[Any]:
        pairs = []
        for name in self.fields:
            text = format_csv_value(record.get(name))
            if text != "":
                pairs.append(f"{name}{self.key_value}{text}")
        return [record.get(self.id_field), self.pair_join.join(pairs)]


@dataclass(frozen=True)
class FileLayout:
    """Columns read from each record, the header names and the text dialect of one file.

    :param columns: Lytics fields read from each record (CSV: one column each; JSON lines: the
        keys kept).
    :param header: header-row names (default: the columns).
    :param file_format: ``csv`` (delimited text) or ``jsonl``.
    :param delimiter: one character between cells (``","``; ``"\\t"`` for TSV).
    :param quoting: ``minimal`` (only cells that need it) or ``all``.
    :param header_row: write the header row first.
    :param row_check: raises ``RowRejected`` for a record that must not be exported (it goes to
        the rejects file with the reason); a frozen dataclass, so it names itself in the signature.
    :param cells: makes a record's cells when they are not simply ``columns`` (e.g.
        :class:`KeyValueCells`); also a frozen dataclass.
    :param lines: makes several rows of one record (e.g. one line per audience); in place of
        ``cells``, also a frozen dataclass.
    :param extension: the ``{ext}`` of name templates (default: ``csv``, ``tsv`` for tabs, ``json``).
    """

    columns: tuple[str, ...]
    header: tuple[str, ...] | None = None
    file_format: FileFormat = "csv"
    delimiter: str = ","
    quoting: Quoting = "minimal"
    header_row: bool = True
    row_check: RowCheck | None = None
    cells: RowCells | None = None
    extension: str | None = None
    lines: RowLines | None = None

    def __post_init__(self) -> None:
        if self.file_format not in EXTENSIONS:
            raise ValueError(f"file_format {self.file_format!r} is not supported; use 'csv' or 'jsonl'")
        if self.quoting not in QUOTING:
            raise ValueError(f"quoting {self.quoting!r} is not supported; use 'minimal' or 'all'")
        if len(self.delimiter) != 1 or self.delimiter in '\r\n"':
            raise ValueError(
                f"delimiter {self.delimiter!r} must be one character other than a quote or line end"
            )
        if self.header is not None and len(self.header) != len(self.columns):
            raise ValueError(f"header has {len(self.header)} names for {len(self.columns)} columns")

    @property
    def ext(self) -> str:
        """The file extension without the dot."""
        if self.extension:
            return self.extension
        if self.file_format == "csv" and self.delimiter == "\t":
            return "tsv"
        return EXTENSIONS[self.file_format]

    def renderer(self) -> CsvRowRenderer | JsonlRowRenderer:
        """The renderer of this layout's rows (no header)."""
        if self.file_format == "jsonl":
            return JsonlRowRenderer(self.columns, self.row_check)
        return CsvRowRenderer(
            self.columns,
            self.row_check,
            delimiter=self.delimiter,
            quoting=QUOTING[self.quoting],
            cells=self.cells,
            lines=self.lines,
        )

    def header_text(self) -> str:
        """The header line (empty for JSON lines or without a header row)."""
        if self.file_format == "jsonl" or not self.header_row:
            return ""
        buffer = io.StringIO()
        csv.writer(
            buffer, lineterminator="\r\n", delimiter=self.delimiter, quoting=QUOTING[self.quoting]
        ).writerow(list(self.header if self.header is not None else self.columns))
        return buffer.getvalue()
