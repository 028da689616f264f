"""A Lytics stream's events as a local JSON-lines copy, for the activity exports.

Contract used: ``GET /v2/stream/{name}/events?limit=&start=&since=`` answers
``{"status": 200, "data": [event, ...], "_next": "<cursor>"}``; an empty ``_next`` (or an empty
page) ends the stream, as the segment scan does.

Exports of only the new events (:func:`download_new_events`) keep an :class:`EventsPosition`:
the cursor of the page that held the last delivered event and how many events of that page were
delivered. The next run asks for that page again with the same ``limit``, skips those events and
reads on; the cursor is passed back as the API gave it. The caller commits the position only
after the file was delivered, so a failed delivery is sent again by the retry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
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


@dataclass(frozen=True)
class EventsPosition:
    """How far a stream's events were delivered: ``done`` events of the page at cursor ``start``
    (``""``: the first page), read with ``limit`` events a page."""

    start: str = ""
    done: int = 0
    limit: int = EVENTS_PAGE_LIMIT

    @classmethod
    def from_state(cls, value: Mapping[str, Any] | None) -> EventsPosition | None:
        """The position saved in the job state, or ``None`` before the first delivery."""
        if not value:
            return None
        return cls(str(value.get("start") or ""), int(value.get("done") or 0), int(value.get("limit") or 0))

    def as_state(self) -> dict[str, Any]:
        """The JSON value the job state keeps."""
        return asdict(self)


@dataclass(frozen=True)
class NewEvents:
    """What :func:`download_new_events` copied: the file, every key seen, the count, and the
    position to commit once they are delivered."""

    path: Path
    columns: list[str]
    count: int
    position: EventsPosition | None


def iter_new_events(
    hook: LyticsHook, stream: str, after: EventsPosition | None, limit: int = EVENTS_PAGE_LIMIT
) -> Iterator[tuple[dict[str, Any], EventsPosition]]:
    """The events of ``stream`` after ``after`` (all of them when ``None``), oldest first, each
    with the position that includes it."""
    cursor = after.start if after else ""
    skip = after.done if after else 0
    limit = after.limit if after and after.limit else limit
    while True:
        body = hook._get(f"/v2/stream/{stream}/events", limit=limit, start=cursor or None)
        events = list(body.get("data") or [])
        for index, event in enumerate(events):
            if index >= skip:
                yield event, EventsPosition(cursor, index + 1, limit)
        following = body.get("_next") or ""
        if not following or not events:
            return
        cursor, skip = following, 0


def download_new_events(
    hook: LyticsHook,
    stream: str,
    work: Path,
    after: EventsPosition | None,
    limit: int = EVENTS_PAGE_LIMIT,
) -> NewEvents:
    """Copy the events after ``after`` to a local JSON-lines file (see the module docstring).

    :param limit: events a page when there is no position yet (a position keeps its own).
    """
    path = work / f"new_events_{stream}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    columns: dict[str, None] = {}
    count, position = 0, after
    with open(path, "w", encoding="utf-8") as out:
        for event, position in iter_new_events(hook, stream, after, limit):  # noqa: B007 - last one kept
            columns.update(dict.fromkeys(event))
            out.write(json.dumps(event, separators=(",", ":"), default=str))
            out.write("\n")
            count += 1
    return NewEvents(path, list(columns), count, position)


def read_jsonl(path: Path) -> Iterator[Mapping[str, Any]]:
    """The objects of a JSON-lines file, one by one."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)
