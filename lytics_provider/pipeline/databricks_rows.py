"""Rows of a Databricks query as typed dicts, in batches (the Databricks side of the table import).

The Statement Execution API sends INLINE ``JSON_ARRAY`` results as strings; each value is turned
back into its column's type (``manifest.schema.columns[].type_name``): integers, floats and
decimals, booleans, timestamps (UTC) and dates. Everything else stays text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from lytics_provider.hooks.databricks import DatabricksStatementHook


def _timestamp(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


CONVERTERS: dict[str, Callable[[str], Any]] = {
    "LONG": int,
    "INT": int,
    "SHORT": int,
    "BYTE": int,
    "DOUBLE": float,
    "FLOAT": float,
    "DECIMAL": Decimal,
    "BOOLEAN": lambda text: text.lower() == "true",
    "TIMESTAMP": _timestamp,
    "TIMESTAMP_NTZ": _timestamp,
    "DATE": date.fromisoformat,
}


def typed_row(names: list[str], types: list[str], row: list[Any]) -> dict[str, Any]:
    """One result row as a dict of typed values."""
    out: dict[str, Any] = {}
    for name, kind, value in zip(names, types, row, strict=True):
        convert = CONVERTERS.get(kind.upper())
        out[name] = convert(value) if value is not None and convert is not None else value
    return out


def databricks_batches(
    conn_id: str, sql: str, since: datetime | None, batch_size: int
) -> Iterator[list[dict[str, Any]]]:
    """The rows of ``sql`` (``:since`` bound when given) in batches of ``batch_size``.

    :param conn_id: Databricks connection.
    :param sql: the query.
    :param since: value of the ``:since`` marker (a TIMESTAMP), or None.
    :param batch_size: rows per batch.
    """
    hook = DatabricksStatementHook(conn_id)
    params = (
        [{"name": "since", "value": since.isoformat(), "type": "TIMESTAMP"}] if since is not None else None
    )
    result = hook.run(sql, params)
    batch: list[dict[str, Any]] = []
    for chunk in hook.rows(result):
        for row in chunk:
            batch.append(typed_row(result.columns, result.column_types, row))
            if len(batch) >= batch_size:
                yield batch
                batch = []
    if batch:
        yield batch
