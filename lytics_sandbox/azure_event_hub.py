"""Loopback HTTPS stand-in for the Azure Event Hubs REST API ("Send batch events" / "Send event").

Sources, Microsoft's published contract:

* https://learn.microsoft.com/en-us/rest/api/eventhub/send-batch-events: ``POST
  https://{namespace}.servicebus.windows.net/{eventHubPath}/messages`` with ``Content-Type:
  application/vnd.microsoft.servicebus.json`` and a JSON array body
  ``[{"Body": "...", "UserProperties": {...}}, ...]``; 201 with an empty body on success, 401 on an
  authorization failure, 500 on an internal error, an error code and message otherwise.
* https://learn.microsoft.com/en-us/rest/api/eventhub/send-event: any other content type is one event.
* https://learn.microsoft.com/en-us/rest/api/eventhub/event-hubs-runtime-rest (common headers) and
  https://learn.microsoft.com/en-us/rest/api/eventhub/generate-sas-token: ``Authorization:
  SharedAccessSignature sr=<url-encoded resource URI>&sig=<url-encoded base64 HMAC-SHA256 of
  "<url-encoded resource URI>\\n<expiry>">&se=<expiry, unix seconds>&skn=<key name>``.
* https://learn.microsoft.com/en-us/azure/event-hubs/event-hubs-quotas: 1 MB (1,048,576 bytes) per
  event or batch; larger requests are refused with 413.
* https://learn.microsoft.com/en-us/azure/event-hubs/event-hubs-messaging-exceptions: 401 for a bad,
  expired or claim-less token, 403 for a disabled entity or an exceeded quota, 404 for an unknown
  event hub, 429 / 503 ``ServerBusy`` when throttled (with ``Retry-After``).

Choices where the pages are silent: error bodies are the Service Bus XML ``<Error><Code>..</Code>
<Detail>..</Detail></Error>``; a token's ``sr`` may name the namespace or the event hub.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote_plus
from xml.sax.saxutils import escape

from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer
from lytics_sandbox.tls import LocalTLS

BATCH_CONTENT_TYPE = "application/vnd.microsoft.servicebus.json"
MAX_BATCH_BYTES = 1024 * 1024


@dataclass
class AccessRule:
    """A shared access policy: its key and claims (``Send``, ``Listen``, ``Manage``)."""

    key: str
    claims: frozenset[str] = frozenset({"Send"})


@dataclass
class EventHub:
    """One event hub: the events it accepted, and whether it is disabled."""

    events: list[dict[str, Any]] = field(default_factory=list)
    disabled: bool = False
    quota_exceeded: bool = False


class EventHubSandbox(SandboxHTTPServer):
    """The stand-in: one namespace with event hubs and shared access policies.

    :param hubs: event hub names that exist.
    :param rules: shared access policies by key name.
    """

    def __init__(self, hubs: tuple[str, ...] = (), rules: dict[str, AccessRule] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.hubs: dict[str, EventHub] = {name: EventHub() for name in hubs}
        self.rules: dict[str, AccessRule] = dict(rules or {})
        self.batches: list[int] = []
        self.ca_file: Path | None = None
        self._events_lock = threading.Lock()
        self.add_route("POST", r"/(?P<hub>[^/]+)/messages", self._send, "send")

    # -- helpers for tests -----------------------------------------------------------------
    def serve_tls(self, tls: LocalTLS) -> None:
        """Serve HTTPS with ``tls`` (call before :meth:`start`); clients trust ``ca_file``."""
        self.ssl_context = tls.server_context
        self.ca_file = tls.ca_file

    def connection_string(self, key_name: str, hub: str | None = None) -> str:
        """The connection string of a policy, ``Endpoint`` at this stand-in."""
        endpoint = f"sb://{self.host}:{self.port}/"
        text = (
            f"Endpoint={endpoint};SharedAccessKeyName={key_name};SharedAccessKey={self.rules[key_name].key}"
        )
        return text + (f";EntityPath={hub}" if hub else "")

    def events(self, hub: str) -> list[dict[str, Any]]:
        """Events accepted by ``hub`` (a copy), in the order received."""
        with self._events_lock:
            return list(self.hubs[hub].events)

    # -- errors ----------------------------------------------------------------------------
    def error_response(self, status: int, message: str, request: Request) -> Response:
        body = f"<Error><Code>{status}</Code><Detail>{escape(message)}</Detail></Error>"
        return Response(status=status, body=body.encode(), content_type="application/xml; charset=utf-8")

    def fault_response(self, rule: Any, request: Request) -> Response:
        response = super().fault_response(rule, request)
        if response.status in (429, 503):  # the documented throttling answer
            text = "ServerBusy: the request was terminated because the namespace is being throttled."
            response.body = self.error_response(response.status, text, request).body
        return response

    # -- auth ------------------------------------------------------------------------------
    def authenticate(self, request: Request) -> Response | None:
        header = request.header("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme != "SharedAccessSignature" or not token:
            return self.error_response(401, "MissingToken: the authorization header was not found.", request)
        fields = dict(parse_qsl(token, keep_blank_values=True))
        if not {"sr", "sig", "se", "skn"} <= set(fields):
            return self.error_response(401, "InvalidToken: malformed SharedAccessSignature.", request)
        rule = self.rules.get(fields["skn"])
        if rule is None:
            return self.error_response(401, f"InvalidSignature: unknown key name {fields['skn']!r}.", request)
        resource = fields["sr"].lower().rstrip("/")
        wanted = self._resource(request).lower()
        if not (wanted == resource or wanted.startswith(resource + "/")):
            return self.error_response(
                401, "InvalidAudience: the token's sr does not cover this entity.", request
            )
        expected = base64.b64encode(
            hmac.new(
                rule.key.encode(), f"{quote_plus(fields['sr'])}\n{fields['se']}".encode(), hashlib.sha256
            ).digest()
        ).decode()
        if not hmac.compare_digest(expected, fields["sig"]):
            return self.error_response(401, "InvalidSignature: the token has an invalid signature.", request)
        try:
            expiry = int(fields["se"])
        except ValueError:
            return self.error_response(401, "InvalidToken: se is not a number.", request)
        if expiry < time.time():
            return self.error_response(401, "ExpiredToken: the token is expired.", request)
        if "Send" not in rule.claims and "Manage" not in rule.claims:
            return self.error_response(
                401, "Unauthorized access. 'Send' claim(s) are required to perform this operation.", request
            )
        return None

    def _resource(self, request: Request) -> str:
        host = request.header("Host") or f"{self.host}:{self.port}"
        hub = request.path.split("/")[1]
        return f"https://{host}/{hub}"

    # -- send ------------------------------------------------------------------------------
    def _send(self, request: Request) -> Response:
        hub = self.hubs.get(request.params["hub"])
        if hub is None:
            return self.error_response(
                404,
                f"MessagingEntityNotFound: the messaging entity '{request.params['hub']}' "
                "could not be found.",
                request,
            )
        if hub.disabled:
            return self.error_response(403, "MessagingEntityDisabled: the event hub is disabled.", request)
        if hub.quota_exceeded:
            return self.error_response(403, "QuotaExceeded: the namespace's quota is exceeded.", request)
        if len(request.body) > MAX_BATCH_BYTES:
            return self.error_response(
                413,
                f"The received message (size: {len(request.body)} bytes) exceeds the limit "
                f"({MAX_BATCH_BYTES} bytes) currently allowed on the link.",
                request,
            )
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != BATCH_CONTENT_TYPE:
            events = [{"Body": request.body.decode("utf-8", "replace"), "UserProperties": {}}]
        else:
            try:
                batch = json.loads(request.body or b"null")
            except ValueError:
                return self.error_response(400, "BadRequest: the batch is not valid JSON.", request)
            if not isinstance(batch, list) or not batch:
                return self.error_response(400, "BadRequest: a batch is a non-empty JSON array.", request)
            events = []
            for item in batch:
                if not isinstance(item, dict) or not isinstance(item.get("Body"), str):
                    return self.error_response(
                        400, "BadRequest: every batch item needs a string Body.", request
                    )
                props = item.get("UserProperties") or {}
                if not isinstance(props, dict):
                    return self.error_response(400, "BadRequest: UserProperties must be an object.", request)
                events.append({"Body": item["Body"], "UserProperties": props})
        with self._events_lock:
            hub.events.extend(events)
            self.batches.append(len(events))
        return Response(status=201, body=b"", content_type="application/xml; charset=utf-8")
