"""The values a destination writes for a member: mapped profile fields, by the vendor's names."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lytics_provider.sync.identifiers import lookup_field, scalar_text


def mapped_values(
    record: dict[str, Any],
    mapping: Mapping[str, str],
    separator: str = ",",
    item_text: Callable[[Any], str] = scalar_text,
) -> dict[str, Any]:
    """``{target: value}`` of the mapped fields the member has: empty values and objects are left
    out, a list is joined into one text.

    :param record: the member's profile.
    :param mapping: Lytics field (dotted path) -> the vendor's field name.
    :param separator: joins the items of a list value (``;`` for multi-select fields).
    :param item_text: one list item as text.
    """
    values: dict[str, Any] = {}
    for source, target in mapping.items():
        value = lookup_field(record, source)
        if value is None or value == "" or isinstance(value, dict):
            continue
        values[target] = separator.join(map(item_text, value)) if isinstance(value, list) else value
    return values
