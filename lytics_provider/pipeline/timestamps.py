"""RFC 3339 timestamps in job configs (light: imported while DAG files are parsed)."""

from __future__ import annotations

from datetime import datetime


def parse_rfc3339(text: str | None, what: str = "events_since") -> datetime | None:
    """An RFC 3339 timestamp (``YYYY-MM-DDThh:mm:ss+00:00``) as an aware datetime."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{what} {text!r} is not RFC 3339; use e.g. 2026-01-31T00:00:00+00:00") from None
    if value.tzinfo is None:
        raise ValueError(f"{what} {text!r} has no UTC offset; add one, e.g. +00:00")
    return value
