"""One Lytics segment-scan page as raw JSON, without turning its members into Python objects.

``GET /api/segment/{id}/scan?limit=&start=&fields=`` answers ``{"data": [...], "_next": cursor,
"total": n}``. Only the cursor, the total and the member count are decoded here (msgspec skips
over the members in C); the body itself goes on to SQLite, which splits it into rows. This
module imports nothing from Airflow, so the scan fetcher's child process starts quickly.

A ``200`` whose body is cut short, or is a Lytics error envelope (``{"status": 500, "message":
..., "data": null}``), is fetched again inside the call like a 503 (:class:`UnusableBody`); the
final error names what the API sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from lytics_provider.pipeline.http import (
    HttpClient,
    PermanentServiceError,
    ServiceError,
    UnusableBody,
    body_cut_short,
)

MAX_SCAN_LIMIT = 100


class CursorExpiredError(ServiceError):
    """The scan cursor passed as ``start`` is no longer accepted; the scan must restart."""


class _PageHead(msgspec.Struct):
    next: str | None = msgspec.field(name="_next", default=None)
    total: int | None = None
    data: list[msgspec.Raw] | None = None
    status: int | None = None
    message: str | None = None


class _PageMembers(msgspec.Struct):
    data: list[dict[str, Any]] | None = None


_decode_head = msgspec.json.Decoder(_PageHead).decode
_decode_members = msgspec.json.Decoder(_PageMembers).decode


def page_members(body: bytes) -> list[dict[str, Any]]:
    """The members of a scan page body, as dicts."""
    return _decode_members(body).data or []


@dataclass(frozen=True)
class RawScanPage:
    """One scan page: the JSON body as received, its member count, the next cursor and the total."""

    body: bytes
    count: int
    next_cursor: str
    total: int | None
    start: str

    @property
    def last(self) -> bool:
        """True when no page follows this one."""
        return not self.next_cursor or not self.count


def scan_path(segment_id: str) -> str:
    """The scan endpoint of an audience."""
    return f"/api/segment/{segment_id}/scan"


def scan_params(
    start: str, limit: int, fields: Iterable[str] | None, extra: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Query parameters of one scan call (``limit`` is capped at the API's 100)."""
    params: dict[str, Any] = {**(extra or {}), "limit": min(int(limit), MAX_SCAN_LIMIT), "start": start}
    if fields:
        params["fields"] = ",".join(fields)
    return params


def parse_scan_page(body: bytes, start: str) -> RawScanPage:
    """Read the cursor, total and member count of a scan body.

    A body that does not decode (cut short) or is an error envelope raises :class:`UnusableBody`
    (the call fetches it again); JSON of another shape raises :class:`ServiceError`.
    """
    try:
        head = _decode_head(body)
    except msgspec.ValidationError as exc:
        raise ServiceError(f"scan page is not the JSON the Lytics API documents: {exc}") from None
    except msgspec.DecodeError as exc:
        if "truncated" in str(exc):
            raise UnusableBody(body_cut_short(len(body))) from None
        raise UnusableBody(f"scan page is not JSON ({exc}; {len(body)} bytes)") from None
    if head.data is None and head.status is not None and head.status >= 400:
        raise UnusableBody(f"error envelope: status {head.status}, message {head.message!r}", head.status)
    count = len(head.data) if head.data else 0
    return RawScanPage(body=body, count=count, next_cursor=head.next or "", total=head.total, start=start)


def fetch_scan_page(
    client: HttpClient,
    segment_id: str,
    start: str = "",
    limit: int = MAX_SCAN_LIMIT,
    fields: Iterable[str] | None = None,
    extra_params: Mapping[str, str] | None = None,
) -> RawScanPage:
    """Fetch one scan page starting at cursor ``start`` (empty for the first page).

    A 400 on a non-empty cursor means the cursor expired: :class:`CursorExpiredError`.
    """
    params = scan_params(start, limit, fields, extra_params)
    try:
        return client.fetch(
            "GET", scan_path(segment_id), lambda answer: parse_scan_page(answer.content, start), params=params
        )
    except PermanentServiceError as exc:
        if start and exc.status == 400:
            raise CursorExpiredError(str(exc), exc.status, exc.body) from None
        raise
