"""Segment: audience events as Identify or Track calls through the HTTP Tracking API's ``/v1/batch``.

The hook extends the official :class:`~airflow.providers.segment.hooks.segment.SegmentHook`: the
``segment`` connection (write key in the extra ``write_key``; Host optional, default
``https://api.segment.io``, e.g. ``https://events.eu1.segmentapis.com`` for EU workspaces) is read
by it. Delivery does not go through the hook's ``analytics`` client, because that client cannot
confirm a batch: it queues events for a background thread that retries, then hands failures to an
``on_error`` callback after the fact (an exception raised there dies with the thread, and the
official hook's callback logs the events, member data included), drops events over 32 KB with a
log line holding the event, and its synchronous ``post`` keeps no ``Retry-After``. A checkpoint per
acknowledged batch needs an answer per request, so :meth:`SegmentBatchHook.send_batch` posts one
``/v1/batch`` request with the hook's write key (HTTP Basic, write key as the user name) through
the retrying client of this package: 429 waits out ``Retry-After``, 5xx and dropped connections
are retried with backoff, a 400 (an event over 32 KB, a request over 500 KB, a body Segment cannot
read) is :class:`BatchRefused`, and the write key never reaches a log or an error.

What the Tracking API cannot tell: it answers 200 for every write key (a wrong key is accepted and
its events dropped) and for events it then drops (no ``userId`` / ``anonymousId``). So the adapter
rejects members with neither before sending, and a wrong write key is seen only in Segment's
debugger.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from airflow.exceptions import AirflowException

try:
    from airflow.providers.segment.hooks.segment import SegmentHook
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "Segment jobs need apache-airflow-providers-segment: install airflow-provider-lytics[segment]"
    ) from exc
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.rest import base_url
from lytics_provider.hooks.rest_errors import error_reader
from lytics_provider.hooks.task_errors import TASK_ERRORS
from lytics_provider.pipeline.http import HttpClient, PermanentServiceError, RetryPolicy, ServiceError
from lytics_provider.sync.act import RowLevelBatchError
from lytics_provider.sync.events import AudienceEvent, EventDestination
from lytics_provider.sync.identifiers import lookup_field, scalar_text
from lytics_provider.sync.plan import Work

DEFAULT_HOST = "https://api.segment.io"
MAX_BATCH_BYTES = 500 * 1024
MAX_MESSAGE_BYTES = 32 * 1024
_ENVELOPE_BYTES = 256
"""Room kept in each request for ``{"batch": [...], "sentAt": ...}`` around the events."""
CallType = Literal["identify", "track"]


class SegmentConfigError(AirflowFailException):
    """The ``segment`` connection cannot be used (no write key); retrying does not help."""


class BatchRefused(Exception):
    """Segment answered 400 to a ``/v1/batch`` request (a payload problem, not the service)."""


@error_reader
def segment_error(body: dict[str, Any]) -> str | None:
    """The text of a Segment error body (``{"code": ..., "message": ...}``)."""
    if body.get("message") or body.get("code"):
        return ": ".join(str(body[k]) for k in ("code", "message") if body.get(k))
    return None


class SegmentBatchHook(SegmentHook):
    """The official ``SegmentHook`` with confirmed ``/v1/batch`` deliveries.

    :param segment_conn_id: the ``segment`` connection (extra ``write_key``; Host optional).
    :param retry_policy: how often and how long one request is retried (429, 5xx, dropped connections).
    """

    def __init__(
        self, segment_conn_id: str = "segment_default", retry_policy: RetryPolicy | None = None
    ) -> None:
        try:
            super().__init__(segment_conn_id=segment_conn_id)
        except AirflowException as exc:
            raise SegmentConfigError(
                f"Connection {segment_conn_id!r} has no Segment write key; put the source's write key "
                'in the extra as {"write_key": "..."}'
            ) from exc
        host = self.connection.host
        self.host = base_url(host, self.connection.schema, self.connection.port) if host else DEFAULT_HOST
        self.retry_policy = retry_policy or RetryPolicy()
        self.requests = 0
        self._client: HttpClient | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        """The write key and its Basic token: never shown in a log or an error."""
        token = base64.b64encode(f"{self.write_key}:".encode()).decode()
        return (str(self.write_key), token)

    def client(self) -> HttpClient:
        """The retrying HTTP client that posts to the Tracking API (built once)."""
        if self._client is None:
            self._client = HttpClient(
                base_url=self.host,
                headers={"Content-Type": "application/json", "Accept": "application/json"},
                auth=(str(self.write_key), ""),
                secrets=self.secrets,
                policy=self.retry_policy,
                error_message=segment_error,
                errors=TASK_ERRORS,
                context=f"connection {self.segment_conn_id!r}",
            )
        return self._client

    def send_batch(self, messages: Sequence[Mapping[str, Any]]) -> None:
        """Post one ``/v1/batch`` request; return once Segment answered 200.

        :raises BatchRefused: Segment answered 400 (the payload, not the service).
        """
        sent_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        body = json.dumps({"batch": list(messages), "sentAt": sent_at}, separators=(",", ":"))
        try:
            self.client().request("POST", "/v1/batch", data=body.encode("utf-8"))
        except PermanentServiceError as exc:
            if exc.status == 400:
                raise BatchRefused(str(exc)) from None
            raise
        self.requests += 1

    def test_connection(self) -> tuple[bool, str]:
        """Post an empty batch (the Tracking API accepts every write key, so only the host is checked)."""
        try:
            self.send_batch([])
        except (ServiceError, BatchRefused) as exc:
            return False, f"Segment at {self.host} did not accept a batch: {exc}"
        return True, (
            f"Segment at {self.host} accepted a batch. The Tracking API answers 200 to any write key; "
            "check that events arrive in the source's debugger."
        )


def pack(
    sized: Sequence[tuple[dict[str, Any], int]], limit: int = MAX_BATCH_BYTES
) -> Iterator[list[dict[str, Any]]]:
    """Group encoded events into requests that stay under ``limit`` bytes, in order."""
    chunk: list[dict[str, Any]] = []
    used = _ENVELOPE_BYTES
    for message, size in sized:
        if chunk and used + size + 1 > limit:
            yield chunk
            chunk, used = [], _ENVELOPE_BYTES
        chunk.append(message)
        used += size + 1
    if chunk:
        yield chunk


class SegmentDestination(EventDestination):
    """Audience events as Identify (trait ``audience_{audience_name}`` true / false) or Track
    (``event`` ``enter`` / ``exit``) calls; the event id is the call's ``messageId``.

    :param hook: the Segment hook that posts the batches.
    :param call_type: ``identify`` or ``track``.
    :param audience_name: the audience's name (the Identify trait is ``audience_{audience_name}``).
    :param user_id_field: the member field sent as ``userId``.
    :param anonymous_id_field: the member field sent as ``anonymousId`` when ``userId`` is empty.
    :param kwargs: :class:`~lytics_provider.sync.events.EventDestination`'s arguments.
    """

    def __init__(
        self,
        *,
        hook: SegmentBatchHook,
        call_type: CallType = "identify",
        audience_name: str,
        user_id_field: str = "_uid",
        anonymous_id_field: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if call_type not in ("identify", "track"):
            raise ValueError(f"call_type {call_type!r} must be identify or track")
        self.hook = hook
        self.call_type = call_type
        self.audience_trait = f"audience_{audience_name}"
        self.user_id_field = user_id_field
        self.anonymous_id_field = anonymous_id_field
        self._id_kinds: dict[str, str] = {}

    def identify(self, record: dict[str, Any]) -> tuple[str, str | None]:
        user_id = scalar_text(lookup_field(record, self.user_id_field)).strip()
        if user_id:
            return user_id, "userId"
        if self.anonymous_id_field:
            anonymous = scalar_text(lookup_field(record, self.anonymous_id_field)).strip()
            if anonymous:
                return anonymous, "anonymousId"
        return "", None

    def invalid_reason(self, ident: str, record: dict[str, Any]) -> str | None:
        if ident:
            return None
        fields = self.user_id_field + (f" or {self.anonymous_id_field}" if self.anonymous_id_field else "")
        return f"the member has no {fields}; Segment drops events without a userId or anonymousId"

    def event(self, kind: str, work: Work) -> AudienceEvent:
        event = super().event(kind, work)
        self._id_kinds[event.id] = work.ref or "userId"
        return event

    def message(self, event: AudienceEvent) -> dict[str, Any]:
        """The Identify or Track call of one event."""
        call: dict[str, Any] = {
            "type": self.call_type,
            "messageId": event.id,
            self._id_kinds.get(event.id, "userId"): event.ident,
            "timestamp": event.time,
        }
        if self.call_type == "identify":
            call["traits"] = {**event.fields, self.audience_trait: event.kind != "exit"}
        else:
            call["event"] = event.kind
            call["properties"] = {**event.fields, "audience": event.audience}
        return call

    def send_events(self, events: list[AudienceEvent]) -> dict[str, str | None]:
        refused: dict[str, str | None] = {}
        sized: list[tuple[dict[str, Any], int]] = []
        for event in events:
            call = self.message(event)
            size = len(json.dumps(call, separators=(",", ":")).encode("utf-8"))
            if size > MAX_MESSAGE_BYTES:
                refused[event.id] = (
                    f"the {self.call_type} call is {size} bytes; Segment accepts at most "
                    f"{MAX_MESSAGE_BYTES} bytes per event (export fewer fields)"
                )
                continue
            sized.append((call, size))
        for chunk in pack(sized):
            try:
                self.hook.send_batch(chunk)
            except BatchRefused as exc:
                raise RowLevelBatchError(str(exc)) from None
        for event in events:
            self._id_kinds.pop(event.id, None)
        return refused

    def describe(self) -> dict[str, Any]:
        described = {"host": self.hook.host, "call_type": self.call_type}
        if self.call_type == "identify":
            described["audience_trait"] = self.audience_trait
        return described

    def describe_after(self) -> dict[str, Any]:
        return {"requests": self.hook.requests}
