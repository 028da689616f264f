"""A loopback stand-in for Segment's HTTP Tracking API (``POST /v1/batch``, ``/v1/identify``, ``/v1/track``).

Contract followed: Segment's "HTTP API Source" reference,
https://segment.com/docs/connections/sources/catalog/libraries/server/http-api/
(source: ``segmentio/segment-docs``, ``src/connections/sources/catalog/libraries/server/http-api/index.md``):

* Authentication: HTTP Basic with the source's **write key** as the user name and an empty
  password (``Authorization: Basic base64("<writeKey>:")``), or ``writeKey`` in the body. A request
  carrying no write key at all is refused with ``400``. A write key that belongs to no source is
  *not* refused: the Tracking API answers ``200`` and drops the events (Segment's edge is stateless;
  see segmentio/analytics-node#59); the stand-in counts them in :attr:`SegmentSandbox.dropped`.
* ``Content-Type: application/json`` is required.
* Size limits: a ``batch`` request carries at most **500 KB**, each event in it at most **32 KB**;
  a single-event call at most 32 KB. Over a limit, or a body that is not JSON: ``400 Bad Request``.
  The error body is ``{"code": ..., "message": ...}``, the two keys Segment's libraries read.
* Everything else answers ``200 {"success": true}``, including events Segment then does not accept:
  no ``userId`` and no ``anonymousId``, a Track call without ``event``, an unknown ``type``. Those are
  dropped (:attr:`SegmentSandbox.dropped`, with the reason) and never reach the source.
* Segment de-duplicates on ``messageId``: an event whose ``messageId`` the source already holds is
  counted in :attr:`SegmentSandbox.duplicates` and not stored again.
* Rate limit: ``429`` with ``Retry-After`` and ``X-RateLimit-Reset`` (seconds), injected through
  :attr:`faults` (``faults.add("429", retry_after=1)``).
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from lytics_sandbox.faults import FaultRule
from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer, json_response

MAX_BATCH_BYTES = 500 * 1024
MAX_MESSAGE_BYTES = 32 * 1024
MESSAGE_TYPES = frozenset({"identify", "track", "page", "screen", "group", "alias"})


@dataclass
class SegmentSource:
    """What one source (write key) has accepted, in arrival order, keyed by ``messageId``."""

    events: dict[str, dict[str, Any]] = field(default_factory=dict)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events.values() if e.get("type") == kind]


class SegmentSandbox(SandboxHTTPServer):
    """Serves the HTTP Tracking API on 127.0.0.1 for the sources named by their write keys.

    :param write_keys: the write keys of the sources that exist.
    """

    def __init__(self, write_keys: tuple[str, ...] = ("sandbox-write-key",), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sources: dict[str, SegmentSource] = {key: SegmentSource() for key in write_keys}
        self.dropped: list[tuple[str, dict[str, Any]]] = []
        self.duplicates = 0
        self.requests_accepted = 0
        self._data_lock = threading.Lock()
        self.add_route("POST", "/v1/batch", self._batch, "batch")
        for kind in ("identify", "track", "page", "screen", "group", "alias"):
            self.add_route("POST", f"/v1/{kind}", self._single(kind), kind)

    @property
    def url(self) -> str:
        return self.base_url

    def add_source(self, write_key: str) -> SegmentSource:
        """Create (or return) the source of ``write_key``."""
        with self._data_lock:
            return self.sources.setdefault(write_key, SegmentSource())

    def connection(self, write_key: str) -> dict[str, Any]:
        """An Airflow ``segment`` connection (JSON form) pointing at this stand-in."""
        return {"conn_type": "segment", "host": self.base_url, "extra": {"write_key": write_key}}

    # -- errors ---------------------------------------------------------------------------------
    def error_response(self, status: int, message: str, request: Request) -> Response:
        return json_response({"code": _code(status), "message": message}, status)

    def fault_response(self, rule: FaultRule, request: Request) -> Response:
        resp = super().fault_response(rule, request)
        if rule.kind == "429":
            resp.headers.setdefault("Retry-After", "1")
            resp.headers["X-RateLimit-Reset"] = resp.headers["Retry-After"]
        return resp

    # -- handlers -------------------------------------------------------------------------------
    def _write_key(self, request: Request, body: dict[str, Any]) -> str | None:
        header = request.header("Authorization") or ""
        if header.startswith("Basic "):
            try:
                user = base64.b64decode(header[6:].strip()).decode("utf-8").split(":", 1)[0]
            except ValueError:
                return None
            return user or None
        key = body.get("writeKey")
        return str(key) if key else None

    def _read(self, request: Request, limit: int) -> tuple[dict[str, Any] | None, Response | None]:
        if "json" not in (request.header("Content-Type") or ""):
            return None, self.error_response(400, "Content-Type must be application/json", request)
        if len(request.body) > limit:
            return None, self.error_response(
                400, f"request body is {len(request.body)} bytes; the limit is {limit} bytes", request
            )
        try:
            body = json.loads(request.body or b"")
        except ValueError:
            return None, self.error_response(400, "request body is not valid JSON", request)
        if not isinstance(body, dict):
            return None, self.error_response(400, "request body must be a JSON object", request)
        return body, None

    def _batch(self, request: Request) -> Response:
        body, refused = self._read(request, MAX_BATCH_BYTES)
        if refused is not None or body is None:
            return refused or self.error_response(400, "bad request", request)
        key = self._write_key(request, body)
        if key is None:
            return self.error_response(400, "no write key: send it as the Basic auth user name", request)
        batch = body.get("batch")
        if not isinstance(batch, list):
            return self.error_response(400, '"batch" must be an array of events', request)
        for index, message in enumerate(batch):
            size = len(json.dumps(message, separators=(",", ":")).encode())
            if not isinstance(message, dict):
                return self.error_response(400, f"batch[{index}] is not an object", request)
            if size > MAX_MESSAGE_BYTES:
                return self.error_response(
                    400,
                    f"batch[{index}] is {size} bytes; the limit is {MAX_MESSAGE_BYTES} per event",
                    request,
                )
        self._accept(key, batch, body.get("context"))
        return json_response({"success": True})

    def _single(self, kind: str) -> Any:
        def handle(request: Request) -> Response:
            body, refused = self._read(request, MAX_MESSAGE_BYTES)
            if refused is not None or body is None:
                return refused or self.error_response(400, "bad request", request)
            key = self._write_key(request, body)
            if key is None:
                return self.error_response(400, "no write key: send it as the Basic auth user name", request)
            self._accept(key, [{**body, "type": kind}], None)
            return json_response({"success": True})

        return handle

    def _accept(self, key: str, messages: list[dict[str, Any]], context: Any) -> None:
        with self._data_lock:
            self.requests_accepted += 1
            source = self.sources.get(key)
            for message in messages:
                reason = _not_accepted(message)
                if source is None:
                    reason = "unknown write key"
                if reason:
                    self.dropped.append((reason, message))
                    continue
                message_id = str(message.get("messageId") or f"auto-{len(source.events)}")
                if message_id in source.events:
                    self.duplicates += 1
                    continue
                if isinstance(context, dict):
                    message = {**message, "context": {**context, **(message.get("context") or {})}}
                source.events[message_id] = message

    # -- read-back for tests --------------------------------------------------------------------
    def members_in(self, write_key: str, audience_trait: str) -> set[str]:
        """``userId`` (else ``anonymousId``) of users whose latest Identify set ``audience_trait`` true."""
        latest: dict[str, bool] = {}
        for event in self.source(write_key).of_type("identify"):
            traits = event.get("traits") or {}
            if audience_trait in traits:
                latest[_who(event)] = bool(traits[audience_trait])
        return {who for who, member in latest.items() if member}

    def entered(self, write_key: str) -> set[str]:
        """Users whose latest Track event is ``enter``."""
        latest: dict[str, str] = {}
        for event in self.source(write_key).of_type("track"):
            if event.get("event") in ("enter", "exit"):
                latest[_who(event)] = str(event["event"])
        return {who for who, kind in latest.items() if kind == "enter"}

    def source(self, write_key: str) -> SegmentSource:
        with self._data_lock:
            return self.sources.get(write_key) or SegmentSource()


def _who(event: dict[str, Any]) -> str:
    return str(event.get("userId") or event.get("anonymousId"))


def _not_accepted(message: dict[str, Any]) -> str | None:
    """Why Segment would drop an event it answered 200 for (None: accepted)."""
    if message.get("type") not in MESSAGE_TYPES:
        return f"unknown type {message.get('type')!r}"
    if not message.get("userId") and not message.get("anonymousId"):
        return "no userId or anonymousId"
    if message["type"] == "track" and not message.get("event"):
        return "track event without a name"
    return None


def _code(status: int) -> str:
    return {400: "invalid_request", 429: "rate_limited"}.get(status, "server_error")
