"""How an audience event is written for a message bus: a JSON document and string attributes.

Receivers that carry properties beside the body (Pub/Sub attributes, Event Hubs
``UserProperties``) get :func:`event_attributes`, which holds the event's deterministic id
(``event_id``) so a consumer can drop a message sent twice by a retried batch.
"""

from __future__ import annotations

import json
from typing import Any

from lytics_provider.sync.events import AudienceEvent


def event_document(
    event: AudienceEvent, *, kind_key: str = "event", fields_key: str = "user"
) -> dict[str, Any]:
    """The whole event: id, kind (``enter`` / ``exit`` / ``change``), audience, time, member and fields.

    ``id`` is the event's deterministic id, the same for every resend (consumers de-duplicate on
    it). The message buses (streams, queues, hubs) receive it with the default key names.

    :param event: the audience event.
    :param kind_key: the key of the event's kind.
    :param fields_key: the key of the member's exported fields.
    """
    return {
        "id": event.id,
        kind_key: event.kind,
        "audience": event.audience,
        "time": event.time,
        "uid": event.uid,
        fields_key: event.fields,
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


def encode_message(event: AudienceEvent) -> bytes:
    """:func:`event_document` as compact UTF-8 JSON (a stream record's or queue message's body)."""
    return compact_json(event_document(event)).encode()
