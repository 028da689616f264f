"""How an audience event is written for a message bus: a JSON document and string attributes.

Receivers that carry properties beside the body (Pub/Sub attributes, Event Hubs
``UserProperties``) get :func:`event_attributes`, which holds the event's deterministic id
(``event_id``) so a consumer can drop a message sent twice by a retried batch.
"""

from __future__ import annotations

import json
from typing import Any

from lytics_provider.sync.events import AudienceEvent


def event_document(event: AudienceEvent) -> dict[str, Any]:
    """The whole event: id, kind (``enter`` / ``exit`` / ``change``), audience, time, member and fields."""
    return {
        "id": event.id,
        "event": event.kind,
        "audience": event.audience,
        "time": event.time,
        "uid": event.uid,
        "user": event.fields,
    }


def event_attributes(event: AudienceEvent) -> dict[str, str]:
    """The event's id, kind, audience and time as string attributes."""
    return {
        "event_id": event.id,
        "event_type": event.kind,
        "audience": event.audience,
        "event_time": event.time,
    }


def compact_json(value: Any) -> str:
    """Compact JSON (values JSON cannot hold, such as datetimes, as strings)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
