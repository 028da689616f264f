"""A ``GET /v2/stream/{name}/events`` route added to a running Lytics sandbox for the activity exports.

Contract (as ``lytics_to_s3.iter_stream_events`` reads it): query ``limit`` and ``start`` (opaque
cursor); answer ``{"status": 200, "data": [...], "_next": cursor}``, ``_next`` empty on the last page.
"""

from __future__ import annotations

from typing import Any

from lytics_provider.sandbox.httpserver import json_response


def install_stream_events(sandbox: Any, streams: dict[str, list[dict[str, Any]]]) -> None:
    """Serve ``streams`` (name → events, oldest first) from ``sandbox``."""

    def handler(request: Any) -> Any:
        events = streams.get(request.params["stream"])
        if events is None:
            return sandbox.error_response(404, "stream not found", request)
        limit = min(int(request.query.get("limit") or 100), 1000)
        offset = int(request.query.get("start") or 0)
        page = events[offset : offset + limit]
        nxt = str(offset + limit) if offset + limit < len(events) else ""
        return json_response({"status": 200, "message": "success", "data": page, "_next": nxt})

    sandbox.add_route("GET", r"/v2/stream/(?P<stream>[^/]+)/events", handler, "stream_events")
