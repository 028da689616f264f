"""The fields of an imported file: which it has, and which of them the job sends.

The Lytics file imports read the chosen file, list every field that can be imported and let the
user select some (the seed's "list all the fields ... select the fields that you want to
import"). :class:`FieldsFound` collects the field names of one file as it is read (the CSV header,
or every key of the JSON-lines records) and :func:`select_fields` keeps a record's selected fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


class FieldsFound:
    """The field names of one file, in the order they first appear."""

    def __init__(self) -> None:
        self._names: dict[str, None] = {}

    def add(self, names: Iterable[str]) -> None:
        """Note the fields of a header or a record."""
        self._names.update(dict.fromkeys(names))

    @property
    def names(self) -> list[str]:
        """Every field found so far."""
        return list(self._names)

    def missing(self, selected: Sequence[str]) -> list[str]:
        """The ``selected`` fields the file does not have."""
        return [name for name in selected if name not in self._names]


def select_fields(record: dict[str, Any], selected: Sequence[str]) -> dict[str, Any]:
    """The ``selected`` fields of ``record`` (all of them when nothing is selected)."""
    if not selected:
        return record
    return {name: record[name] for name in selected if name in record}


def check_selected_fields(fields: Sequence[str] | None, timestamp_field: str | None) -> None:
    """Refuse a selection with an empty or repeated name, or one without the ``timestamp_field``.

    :param fields: the selected fields (``None`` or empty: every field).
    :param timestamp_field: the field Lytics reads the event time from, if any.
    """
    if not fields:
        return
    if any(not str(name).strip() for name in fields):
        raise ValueError("fields has an empty name; list the file's column / key names to import")
    repeated = sorted({name for name in fields if list(fields).count(name) > 1})
    if repeated:
        raise ValueError(f"fields names {', '.join(repeated)} more than once; list each field once")
    if timestamp_field and timestamp_field not in fields:
        raise ValueError(
            f"timestamp_field {timestamp_field!r} is not in fields, so the records would reach Lytics "
            f"without their event time: add {timestamp_field!r} to fields"
        )
