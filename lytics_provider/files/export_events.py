"""A Lytics stream's events as a local JSON-lines copy, for the activity exports.

Contract used: ``GET /v2/stream/{name}/events?limit=&start=&since=`` answers
``{"status": 200, "data": [event, ...], "_next": "<cursor>"}``; an empty ``_next`` (or an empty
page) ends the stream, as the segment scan does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lytics_provider.hooks.lytics import LyticsHook

EVENTS_PAGE_LIMIT = 1000


def iter_stream_events(
    hook: LyticsHook, stream: str, limit: int = EVENTS_PAGE_LIMIT, since: str | None = None
) -> Iterator[dict[str, Any]]:
    """Every event of a Lytics stream, oldest first, page by page."""
    cursor = ""
    while True:
        body = hook._get(f"/v2/stream/{stream}/events", limit=limit, start=cursor or None, since=since)
        events = list(body.get("data") or [])
        yield from events
        cursor = body.get("_next") or ""
        if not cursor or not events:
            return


@dataclass(frozen=True)
class EventsPage:
    """One page of a stream's events: the cursor that fetched it, its events and the next cursor."""

    start: str
    events: list[dict[str, Any]]
    next: str


def stream_pages(
    hook: LyticsHook, stream: str, start: str = "", limit: int = EVENTS_PAGE_LIMIT
) -> Iterator[EventsPage]:
    """The pages of a stream from cursor ``start`` (empty: the oldest event), with their cursors, so a
    reader can remember where it stopped (a page's ``start`` and how many of its events it used)."""
    cursor = start
    while True:
        body = hook._get(f"/v2/stream/{stream}/events", limit=limit, start=cursor or None)
        page = EventsPage(cursor, list(body.get("data") or []), body.get("_next") or "")
        yield page
        if not page.next or not page.events:
            return
        cursor = page.next


def download_events(hook: LyticsHook, stream: str, work: Path) -> tuple[Path, list[str]]:
    """Copy a stream's events to a local JSON-lines file; return it and every key seen (first-seen order)."""
    path = work / f"events_{stream}.jsonl"
    columns: dict[str, None] = {}
    with open(path, "w", encoding="utf-8") as out:
        for event in iter_stream_events(hook, stream):
            columns.update(dict.fromkeys(event))
            out.write(json.dumps(event, separators=(",", ":"), default=str))
            out.write("\n")
    return path, list(columns)


def read_jsonl(path: Path) -> Iterator[Mapping[str, Any]]:
    """The objects of a JSON-lines file, one by one."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)
