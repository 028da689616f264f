"""What an audience-event destination holds: the members whose latest event is an enter (or a change)."""

from __future__ import annotations

from collections.abc import Iterable


def held_members(events: Iterable[tuple[str, str]]) -> set[str]:
    """Members whose latest ``(uid, kind)`` event is an ``enter`` or ``change``, in delivery order."""
    latest: dict[str, str] = {}
    for uid, kind in events:
        latest[uid] = kind
    return {uid for uid, kind in latest.items() if kind in ("enter", "change")}
