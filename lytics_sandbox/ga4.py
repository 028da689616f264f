"""A loopback stand-in for the GA4 Measurement Protocol (``/mp/collect`` and ``/debug/mp/collect``).

Contract followed (Google's developer documentation):

* "Send Measurement Protocol events",
  https://developers.google.com/analytics/devguides/collection/protocol/ga4/sending-events :
  ``POST`` only, JSON body; the query carries ``api_secret`` and ``measurement_id`` (gtag.js
  streams) or ``firebase_app_id`` (Firebase streams); the body ``client_id`` (gtag.js) or
  ``app_instance_id`` (Firebase), optional ``user_id``, ``timestamp_micros``,
  ``user_properties`` (``{name: {"value": v}}``) and ``events`` (``[{"name", "params"}]``).
* "Measurement Protocol reference", limitations,
  https://developers.google.com/analytics/devguides/collection/protocol/ga4/reference : at most
  25 events per request, 25 params per event, 25 user properties; event and param names at most
  40 characters, a letter first, then letters, digits and underscores; user property names at
  most 24 characters and values at most 36; param values at most 100 characters; reserved event,
  param and user property names and the prefixes ``_``, ``firebase_``, ``ga_``, ``google_``; a
  body under 130 kB.
* "Validate events",
  https://developers.google.com/analytics/devguides/collection/protocol/ga4/validating-events :
  ``/mp/collect`` returns 2xx whatever it is sent (here ``204 No Content``): a request breaking a
  rule, or carrying an unknown ``api_secret``, is dropped without a word (:attr:`GA4Sandbox.dropped`
  keeps what was dropped and why). ``/debug/mp/collect`` answers ``200`` with
  ``{"validationMessages": [{"fieldPath", "description", "validationCode"}]}`` (empty when valid)
  and does not check the ``api_secret``; validated events are never stored.

The rules are implemented here on their own, not shared with the provider's checks, so the tests
compare two readings of the documentation.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer, json_response

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
_USER_PROPERTY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,23}$")
_PREFIXES = ("_", "firebase_", "ga_", "google_")
_RESERVED_EVENTS = {
    "ad_activeview", "ad_click", "ad_exposure", "ad_impression", "ad_query", "ad_reward",
    "adunit_exposure", "app_background", "app_clear_data", "app_exception", "app_remove",
    "app_store_refund", "app_store_subscription_cancel", "app_store_subscription_convert",
    "app_store_subscription_renew", "app_update", "app_upgrade", "dynamic_link_app_open",
    "dynamic_link_app_update", "dynamic_link_first_open", "error", "first_open", "first_visit",
    "in_app_purchase", "notification_dismiss", "notification_foreground", "notification_open",
    "notification_receive", "os_update", "session_start", "session_start_with_rollout", "user_engagement",
}  # fmt: skip
_RESERVED_PARAMS = {"firebase_conversion"}
_RESERVED_USER_PROPERTIES = {
    "first_open_time", "first_visit_time", "last_deep_link_referrer", "user_id", "first_open_after_install",
}  # fmt: skip


@dataclass
class Stream:
    """A data stream: its id (measurement id or Firebase app id), API secrets and received requests."""

    stream_id: str
    api_secrets: set[str] = field(default_factory=set)
    received: list[dict[str, Any]] = field(default_factory=list)

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """(client id or app instance id, event) of every accepted event, in arrival order."""
        out = []
        for body in self.received:
            who = str(body.get("client_id") or body.get("app_instance_id"))
            out.extend((who, event) for event in body.get("events") or [])
        return out


class GA4Sandbox(SandboxHTTPServer):
    """Serves the Measurement Protocol on 127.0.0.1."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.streams: dict[str, Stream] = {}
        self.dropped: list[tuple[list[dict[str, str]], dict[str, Any]]] = []
        self._data_lock = threading.Lock()
        self.add_route("POST", "/mp/collect", self._collect, "collect")
        self.add_route("POST", "/debug/mp/collect", self._debug, "debug_collect")

    def add_stream(self, stream_id: str, api_secret: str) -> Stream:
        with self._data_lock:
            stream = self.streams.setdefault(stream_id, Stream(stream_id))
            stream.api_secrets.add(api_secret)
            return stream

    def connection(self, api_secret: str) -> dict[str, Any]:
        """An Airflow ``ga4_measurement_protocol`` connection (JSON form) to this stand-in."""
        return {"conn_type": "ga4_measurement_protocol", "host": self.base_url, "password": api_secret}

    # -- handlers -------------------------------------------------------------------------------
    def _collect(self, request: Request) -> Response:
        body, messages = self._validated(request)
        stream_id = request.query.get("measurement_id") or request.query.get("firebase_app_id") or ""
        with self._data_lock:
            stream = self.streams.get(stream_id)
            if stream is None or request.query.get("api_secret") not in stream.api_secrets:
                messages = [*messages, _message("", "api_secret or stream unknown", "VALUE_INVALID")]
            if messages or stream is None:
                self.dropped.append((messages, body or {}))
            else:
                stream.received.append(body or {})
        return Response(status=204, body=b"", content_type="text/plain")

    def _debug(self, request: Request) -> Response:
        _, messages = self._validated(request)
        return json_response({"validationMessages": messages})

    def _validated(self, request: Request) -> tuple[dict[str, Any] | None, list[dict[str, str]]]:
        if len(request.body) > 130_000:
            return None, [_message("", "Payload is larger than 130kB.", "VALUE_OUT_OF_BOUNDS")]
        try:
            body = json.loads(request.body or b"")
        except ValueError:
            return None, [_message("", "Unable to parse Measurement Protocol JSON payload.", "VALUE_INVALID")]
        if not isinstance(body, dict):
            return None, [_message("", "Payload must be a JSON object.", "VALUE_INVALID")]
        firebase = "firebase_app_id" in request.query
        return body, _check(body, "app_instance_id" if firebase else "client_id")

    # -- read-back for tests --------------------------------------------------------------------
    def entered(self, stream_id: str, audience_slug: str) -> set[str]:
        """Clients whose latest ``enter_``/``exit_`` event of the audience is an enter."""
        latest: dict[str, bool] = {}
        stream = self.streams.get(stream_id)
        for who, event in stream.events() if stream else []:
            if event.get("name") == f"enter_{audience_slug}":
                latest[who] = True
            elif event.get("name") == f"exit_{audience_slug}":
                latest[who] = False
        return {who for who, inside in latest.items() if inside}


def _message(path: str, description: str, code: str) -> dict[str, str]:
    return {"fieldPath": path, "description": description, "validationCode": code}


def _check(body: dict[str, Any], identifier: str) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    if not body.get(identifier):
        out.append(_message(identifier, f"Measurement requires an {identifier}.", "VALUE_REQUIRED"))
    events = body.get("events")
    if not isinstance(events, list) or not events:
        out.append(_message("events", "Measurement requires at least one event.", "VALUE_REQUIRED"))
        events = []
    if len(events) > 25:
        out.append(
            _message("events", "Measurement exceeds the maximum of 25 events.", "EXCEEDED_MAX_ENTITIES")
        )
    for index, event in enumerate(events):
        name = str((event or {}).get("name") or "")
        if not _NAME.match(name):
            out.append(
                _message("events", f"Event at index: [{index}] has invalid name [{name}].", "NAME_INVALID")
            )
        elif name in _RESERVED_EVENTS or name.startswith(_PREFIXES):
            out.append(
                _message("events", f"Event at index: [{index}] has reserved name [{name}].", "NAME_RESERVED")
            )
        params = (event or {}).get("params") or {}
        if len(params) > 25:
            out.append(
                _message(f"events[{index}].params", "Event exceeds 25 parameters.", "EXCEEDED_MAX_ENTITIES")
            )
        for key, value in params.items():
            path = f"events[{index}].params"
            if not _NAME.match(key):
                out.append(_message(path, f"Param [{key}] has invalid name.", "NAME_INVALID"))
            elif key in _RESERVED_PARAMS or key.startswith(_PREFIXES):
                out.append(_message(path, f"Param [{key}] has reserved name.", "NAME_RESERVED"))
            if isinstance(value, str) and len(value) > 100:
                out.append(
                    _message(path, f"Param [{key}] has a value longer than 100.", "VALUE_OUT_OF_BOUNDS")
                )
            elif isinstance(value, dict | list) and key != "items":
                out.append(_message(path, f"Param [{key}] has an invalid value.", "VALUE_INVALID"))
    properties = body.get("user_properties") or {}
    if len(properties) > 25:
        out.append(_message("user_properties", "Exceeds 25 user properties.", "EXCEEDED_MAX_ENTITIES"))
    for key, holder in properties.items():
        if not _USER_PROPERTY_NAME.match(key):
            out.append(
                _message("user_properties", f"User property [{key}] has invalid name.", "NAME_INVALID")
            )
        elif key in _RESERVED_USER_PROPERTIES or key.startswith(_PREFIXES):
            out.append(
                _message("user_properties", f"User property [{key}] has reserved name.", "NAME_RESERVED")
            )
        value = holder.get("value") if isinstance(holder, dict) else None
        if isinstance(value, str) and len(value) > 36:
            out.append(
                _message(
                    "user_properties", f"User property [{key}] value longer than 36.", "VALUE_OUT_OF_BOUNDS"
                )
            )
        elif isinstance(value, dict | list):
            out.append(
                _message("user_properties", f"User property [{key}] has an invalid value.", "VALUE_INVALID")
            )
    return out
