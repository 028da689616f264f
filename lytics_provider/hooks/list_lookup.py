"""Find the list (audience, static list) a job names by id or by name among a service's lists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SHOWN_LISTS = 20
"""Lists named in the error when none matches."""


def by_id_or_name(
    lists: Sequence[dict[str, Any]],
    ref: str,
    id_key: str = "id",
    name_key: str = "name",
    noun: str = "lists",
) -> tuple[dict[str, Any] | None, str]:
    """The list whose id is ``ref``, else the only one named ``ref``: ``(list, "")``; when there is
    none, ``(None, problem)`` with the problem in words (``not found`` or ``matches several lists``).

    :param lists: the service's lists.
    :param ref: the id or the exact name a job names.
    :param id_key: the key of a list's id.
    :param name_key: the key of a list's name.
    :param noun: what the service calls its lists (``audiences``).
    """
    for item in lists:
        if str(item.get(id_key)) == str(ref):
            return item, ""
    named = [item for item in lists if str(item.get(name_key)) == str(ref)]
    if len(named) == 1:
        return named[0], ""
    return None, f"matches several {noun}" if named else "not found"


def list_choices(lists: Sequence[dict[str, Any]], id_key: str = "id", name_key: str = "name") -> str:
    """``id (name), ...`` of the first lists, for an error that asks to pick one ("" when none).

    :param lists: the service's lists.
    :param id_key: the key of a list's id.
    :param name_key: the key of a list's name.
    """
    return ", ".join(f"{item.get(id_key)} ({item.get(name_key)})" for item in lists[:SHOWN_LISTS])
