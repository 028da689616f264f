"""Lytics field types → warehouse column types, column names, and cell values for bulk loads.

Lytics field ``type`` values follow the LQL kinds (``string``, ``int``, ``number``, ``bool``,
``date``, ``[]string``, ``[]time``, ``ts[]string``, ``map[string]int``, ...). Scalars get a typed
column; every non-scalar kind (lists, sets, maps) is exported as JSON: ``VARIANT`` on Snowflake,
``SUPER``-free ``VARCHAR(65535)`` JSON text on Redshift/PostgreSQL, a JSON ``STRING`` on
Databricks, and on BigQuery a separate child table per field (see ``lytics_to_bigquery``).
Unknown kinds are exported as text.

A value that cannot be written as its column type (``"abc"`` in an ``int`` field) raises
:class:`CellError`; the exporters put that row in the rejects file with the message.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

Dialect = Literal["redshift", "postgres", "snowflake", "bigquery", "databricks"]
Kind = Literal["string", "int", "number", "bool", "timestamp", "json"]

_KIND_OF = {
    "string": "string",
    "text": "string",
    "int": "int",
    "integer": "int",
    "int64": "int",
    "number": "number",
    "float": "number",
    "bool": "bool",
    "boolean": "bool",
    "date": "timestamp",
    "time": "timestamp",
    "datetime": "timestamp",
    "timestamp": "timestamp",
}

COLUMN_TYPES: dict[str, dict[str, str]] = {
    "redshift": {
        "string": "VARCHAR(65535)",
        "int": "BIGINT",
        "number": "DOUBLE PRECISION",
        "bool": "BOOLEAN",
        "timestamp": "TIMESTAMPTZ",
        "json": "VARCHAR(65535)",
    },
    "postgres": {
        "string": "TEXT",
        "int": "BIGINT",
        "number": "DOUBLE PRECISION",
        "bool": "BOOLEAN",
        "timestamp": "TIMESTAMPTZ",
        "json": "TEXT",
    },
    "snowflake": {
        "string": "VARCHAR(16777216)",
        "int": "NUMBER(38,0)",
        "number": "FLOAT",
        "bool": "BOOLEAN",
        "timestamp": "TIMESTAMP_TZ(9)",
        "json": "VARIANT",
    },
    "bigquery": {
        "string": "STRING",
        "int": "INT64",
        "number": "FLOAT64",
        "bool": "BOOL",
        "timestamp": "TIMESTAMP",
        "json": "JSON",
    },
    "databricks": {
        "string": "STRING",
        "int": "BIGINT",
        "number": "DOUBLE",
        "bool": "BOOLEAN",
        "timestamp": "TIMESTAMP",
        "json": "STRING",
    },
}
_MAX_LEN = {"redshift": 127, "postgres": 63, "snowflake": 255, "bigquery": 300, "databricks": 255}
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class CellError(ValueError):
    """A value that cannot be loaded into its column."""


def kind_of(lytics_type: str | None) -> Kind:
    """The column kind of a Lytics field type (non-scalars → ``json``, unknown → ``string``)."""
    text = (lytics_type or "string").strip().lower()
    if text.startswith(("[]", "map[", "ts[", "set[")) or text in ("map", "array", "object", "json"):
        return "json"
    return _KIND_OF.get(text, "string")  # type: ignore[return-value]


def is_scalar(lytics_type: str | None) -> bool:
    """True when the field type has one value per user (not a list, set or map)."""
    return kind_of(lytics_type) != "json"


def column_type(lytics_type: str | None, dialect: Dialect) -> str:
    """The column type of a Lytics field type in ``dialect``."""
    return COLUMN_TYPES[dialect][kind_of(lytics_type)]


def sanitize_name(name: str, dialect: Dialect) -> str:
    """A column/table name the warehouse accepts unquoted: ``[a-z0-9_]``, not starting with a digit."""
    text = re.sub(r"[^0-9A-Za-z_]+", "_", name.strip()).lower() or "field"
    if text[0].isdigit():
        text = f"_{text}"
    return text[: _MAX_LEN[dialect]]


def unique_names(names: Iterable[str], dialect: Dialect) -> list[str]:
    """Sanitised names; a collision gets an integer suffix (``first_name``, ``first_name1``)."""
    out: list[str] = []
    seen: set[str] = set()
    for name in names:
        base = sanitize_name(name, dialect)
        candidate, n = base, 0
        while candidate in seen:
            n += 1
            candidate = f"{base}{n}"
        seen.add(candidate)
        out.append(candidate)
    return out


@dataclass(frozen=True)
class Column:
    """One exported field: its Lytics name and type, the column name and column kind."""

    field: str
    lytics_type: str
    name: str
    kind: Kind

    def sql_type(self, dialect: Dialect) -> str:
        """The column's type in ``dialect``."""
        return COLUMN_TYPES[dialect][self.kind]


def plan_columns(
    schema_fields: Sequence[Mapping[str, Any]], wanted: Sequence[str] | None, dialect: Dialect
) -> list[Column]:
    """Columns for the fields to export (default: every schema field, in schema order).

    ``schema_fields`` are ``GET /v2/schema/user/field`` entries (``id``, ``type``). A wanted field
    that the schema does not know raises a ``ValueError`` naming it.
    """
    types = {str(f["id"]): str(f.get("type") or "string") for f in schema_fields}
    if wanted:
        unknown = [name for name in wanted if name not in types]
        if unknown:
            raise ValueError(
                f"fields {unknown} are not in the Lytics user schema; fix 'fields' (known fields: "
                f"{', '.join(sorted(types)[:30])}{', ...' if len(types) > 30 else ''})"
            )
        fields = list(dict.fromkeys(wanted))
    else:
        fields = list(types)
    names = unique_names(fields, dialect)
    return [Column(f, types[f], n, kind_of(types[f])) for f, n in zip(fields, names, strict=True)]


def create_table_sql(
    table: str, columns: Sequence[Column], dialect: Dialect, or_replace: bool = False
) -> str:
    """``CREATE [OR REPLACE] TABLE`` for ``columns`` (``table`` already quoted as needed)."""
    body = ", ".join(f'"{c.name}" {c.sql_type(dialect)}' for c in columns)
    return f"CREATE {'OR REPLACE ' if or_replace else ''}TABLE {table} ({body})"


def _timestamp(value: Any) -> str:
    if isinstance(value, bool):
        raise CellError(f"{value!r} is not a timestamp")
    if isinstance(value, (int, float)):
        seconds = value / 1000 if abs(value) > 10_000_000_000 else value
        return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    text = str(value).strip()
    if text.isdigit():
        return _timestamp(int(text))
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise CellError(f"{preview_value(text)!r} is not an RFC 3339 timestamp") from None
    return text


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise CellError(f"{value!r} is not an integer")
    try:
        number = int(value) if not isinstance(value, float) else value
    except (TypeError, ValueError):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise CellError(f"{preview_value(value)!r} is not an integer") from None
    if isinstance(number, float):
        if not number.is_integer():
            raise CellError(f"{number!r} is not an integer")
        number = int(number)
    if not INT64_MIN <= number <= INT64_MAX:
        raise CellError(f"{number} is outside the 64-bit integer range")
    return number


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise CellError(f"{value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CellError(f"{preview_value(value)!r} is not a number") from None
    if math.isnan(number) or math.isinf(number):
        raise CellError(f"{number!r} is not a finite number")
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "t", "1", "yes"):
        return True
    if text in ("false", "f", "0", "no"):
        return False
    raise CellError(f"{preview_value(value)!r} is not a boolean")


def preview_value(value: Any, limit: int = 30) -> str:
    """A short preview of a bad value for an error message."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def to_cell(value: Any, kind: Kind) -> Any:
    """The value as the column kind wants it in a CSV load; ``None`` stays ``None`` (NULL)."""
    if value is None or (value == "" and kind != "string"):
        return None
    if kind == "string":
        if isinstance(value, (dict, list)):
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
        return value if isinstance(value, str) else str(value)
    if kind == "int":
        return _int(value)
    if kind == "number":
        return _number(value)
    if kind == "bool":
        return "true" if _bool(value) else "false"
    if kind == "timestamp":
        return _timestamp(value)
    if isinstance(value, (set, frozenset, tuple)):
        value = list(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def row_cells(record: Mapping[str, Any], columns: Sequence[Column]) -> list[Any]:
    """One record as load cells in column order; raises :class:`CellError` naming the field."""
    cells = []
    for column in columns:
        try:
            cells.append(to_cell(record.get(column.field), column.kind))
        except CellError as exc:
            raise CellError(f"field {column.field!r} ({column.lytics_type}): {exc}") from None
    return cells
