"""A webhook receiver over TLS, with an OAuth 2.0 token endpoint, for the Webhooks integration.

Contracts it follows:

* the Lytics Webhooks page (https://docs.lytics.com/docs/webhooks): the receiver accepts POST (or
  the job's HTTP Method) with ``application/json`` over https; authorization is request headers /
  parameters, an OAuth 2.0 Client Credentials bearer token, or none;
* CloudEvents 1.0, JSON event format and HTTP protocol binding
  (https://github.com/cloudevents/spec/blob/main/cloudevents/bindings/http-protocol-binding.md):
  structured mode ``application/cloudevents+json``, batched mode ``application/cloudevents-batch+json``;
* OAuth 2.0 client credentials, RFC 6749 §4.4 (https://www.rfc-editor.org/rfc/rfc6749#section-4.4):
  ``POST /oauth/token`` with ``grant_type=client_credentials`` and the client in HTTP Basic (or the
  form), answered ``{"access_token", "token_type": "Bearer", "expires_in"}``; errors per §5.2
  (``invalid_client`` 401, ``unsupported_grant_type`` 400). A request with an expired or unknown
  token is answered 401 with ``WWW-Authenticate: Bearer error="invalid_token"`` (RFC 6750 §3.1);
* rate limiting: 429 with ``Retry-After`` (RFC 6585 §4), injected through :attr:`faults` like 5xx
  answers and dropped connections (``lytics_sandbox.faults``).

The receiver de-duplicates by event id (the CloudEvents ``id``, the Lytics body's ``id``, else the
``Idempotency-Key`` header), as a receiver that wants each event once does: :attr:`events` holds
each id once, :attr:`duplicates` counts the ids that arrived again. :meth:`answer_5xx_after_accepting`
makes it store a request and still answer 503 (its own downstream failed), so the sender retries
a request the receiver already has. :attr:`require_valid_email` makes it refuse (422) a body with
an event whose ``email`` is not an address, as a receiver that validates its input does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer, json_response

HOOK_PATH = r"/hooks/(?P<name>[A-Za-z0-9_.-]+)"
ENRICH_PATH = r"/enrich/(?P<name>[A-Za-z0-9_.-]+)"
TOKEN_PATH = "/oauth/token"


@dataclass
class ReceivedEvent:
    """One event the receiver accepted (the first time its id arrived)."""

    id: str
    kind: str | None
    uid: str | None
    hook: str
    document: Any
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = ""


@dataclass
class TLSFiles:
    """The receiver's CA (for clients' ``ca_bundle``) and its own certificate, as PEM files."""

    ca_bundle: Path
    context: ssl.SSLContext


def make_tls(directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> TLSFiles:
    """A throwaway CA (``trustme``) and a server certificate for ``hosts``; the CA lands in ``directory``."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert(*hosts)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    directory.mkdir(parents=True, exist_ok=True)
    bundle = directory / "webhooks-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return TLSFiles(bundle, context)


class WebhookReceiver(SandboxHTTPServer):
    """Receives webhook events over https; see the module docstring.

    :param tls: the certificate to serve (:func:`make_tls`).
    :param auth: ``none``, ``headers`` (:attr:`required_headers` / :attr:`required_params` must
        match) or ``oauth2`` (a live bearer token from :data:`TOKEN_PATH`).
    :param token_lifetime: seconds a token lives (``expires_in``).
    """

    def __init__(self, tls: TLSFiles, auth: str = "none", token_lifetime: float = 3600.0) -> None:
        super().__init__()
        self.ssl_context = tls.context
        self.tls = tls
        self.auth = auth
        self.token_lifetime = token_lifetime
        self.default_token_lifetime = token_lifetime
        self.required_headers: dict[str, str] = {}
        self.required_params: dict[str, str] = {}
        self.client_id = "lytics-client"
        self.client_secret = "lytics-client-secret"
        self.require_valid_email = False
        self.events: dict[str, ReceivedEvent] = {}
        self.duplicates: Counter[str] = Counter()
        self.accepted_requests = 0
        self.last_kind: dict[str, str] = {}
        self.tokens: dict[str, float] = {}
        self.tokens_issued = 0
        self.token_requests: list[dict[str, str]] = []
        self.refused_tokens = 0
        self._fail_after_accept = 0
        self._expire_after: int | None = None
        self.hook_requests = 0
        self.keep_bodies = True
        """Keep every accepted request's headers and body in :attr:`bodies`, and each event's document
        (off for benchmarks: only ids, kinds and members are kept)."""
        self.bodies: list[tuple[dict[str, str], bytes]] = []
        self._state = threading.Lock()
        self.add_route("POST", TOKEN_PATH, self._token, "token")
        for method in ("POST", "PUT", "PATCH"):
            self.add_route(method, HOOK_PATH, self._receive, "hook")
            self.add_route(method, ENRICH_PATH, self._enrich, "enrich")
        self.enrich_requests: Counter[str] = Counter()

    # -- controls for tests -------------------------------------------------------------------
    def url(self, name: str = "events") -> str:
        """The https URL of one hook."""
        return f"{self.base_url}/hooks/{name}"

    def enrich_url(self, name: str = "users") -> str:
        """The https URL of the enrichment service (answers each member with JSON)."""
        return f"{self.base_url}/enrich/{name}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}{TOKEN_PATH}"

    def expire_tokens(self) -> None:
        """Every token issued so far expires now (the next call with one is answered 401)."""
        with self._state:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    def expire_tokens_after(self, requests: int) -> None:
        """Every token expires when the receiver has seen ``requests`` more hook requests."""
        with self._state:
            self._expire_after = self.hook_requests + requests

    def answer_5xx_after_accepting(self, times: int) -> None:
        """The next ``times`` hook requests are stored, then answered 503."""
        with self._state:
            self._fail_after_accept = times

    def reset(self) -> None:
        """Forget every event, token and counter (a new test)."""
        with self._state:
            self.events.clear()
            self.duplicates.clear()
            self.last_kind.clear()
            self.tokens.clear()
            self.token_requests.clear()
            self.enrich_requests.clear()
            self.accepted_requests = self.tokens_issued = self.refused_tokens = 0
            self.token_lifetime = self.default_token_lifetime
            self._fail_after_accept = 0
            self._expire_after = None
            self.hook_requests = 0
            self.bodies.clear()
            self.required_headers, self.required_params = {}, {}
            self.require_valid_email = False
        self.faults.clear()
        self.reset_counters()

    def held(self) -> set[str]:
        """Members whose latest event is an enter (or a change: they are still in)."""
        with self._state:
            return {uid for uid, kind in self.last_kind.items() if kind in ("enter", "change")}

    def received(self, hook: str | None = None) -> list[ReceivedEvent]:
        with self._state:
            return [e for e in self.events.values() if hook is None or e.hook == hook]

    @property
    def duplicate_deliveries(self) -> int:
        return sum(self.duplicates.values())

    # -- auth ---------------------------------------------------------------------------------
    def authenticate(self, request: Request) -> Response | None:
        if request.route == "token":
            return None
        with self._state:
            self.hook_requests += 1
            if self._expire_after is not None and self.hook_requests > self._expire_after:
                self._expire_after = None
                self.tokens = dict.fromkeys(self.tokens, 0.0)
        if self.auth == "none":
            return None
        if self.auth == "headers":
            for name, value in self.required_headers.items():
                if request.header(name) != value:
                    return json_response(
                        {"error": "unauthorized", "message": f"missing or wrong {name}"}, 401
                    )
            for name, value in self.required_params.items():
                if request.query.get(name) != value:
                    return json_response(
                        {"error": "unauthorized", "message": f"missing or wrong {name}"}, 401
                    )
            return None
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        with self._state:
            expires = self.tokens.get(token) if scheme.lower() == "bearer" else None
            live = expires is not None and expires > time.time()
            if not live:
                self.refused_tokens += 1
        if live:
            return None
        problem = "invalid_token"
        return json_response(
            {"error": problem, "message": "the access token expired or is unknown"},
            401,
            {"WWW-Authenticate": f'Bearer error="{problem}"'},
        )

    def _token(self, request: Request) -> Response:
        form = dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        scheme, _, encoded = (request.header("Authorization") or "").partition(" ")
        if scheme.lower() == "basic":
            try:
                client_id, _, client_secret = base64.b64decode(encoded).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                client_id = client_secret = None
        if form.get("grant_type") != "client_credentials":
            return json_response({"error": "unsupported_grant_type"}, 400)
        if client_id != self.client_id or client_secret != self.client_secret:
            return json_response({"error": "invalid_client"}, 401, {"WWW-Authenticate": "Basic"})
        token = secrets.token_urlsafe(24)
        with self._state:
            self.tokens[token] = time.time() + self.token_lifetime
            self.tokens_issued += 1
            self.token_requests.append({k: v for k, v in form.items() if k != "client_secret"})
        return json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": int(self.token_lifetime)}
        )

    # -- events -------------------------------------------------------------------------------
    def _receive(self, request: Request) -> Response:
        try:
            document = request.json()
        except ValueError:
            return json_response({"error": "invalid_json", "message": "the body is not JSON"}, 400)
        items = document if isinstance(document, list) else [document]
        content_type = request.header("Content-Type") or ""
        if not items or not all(isinstance(item, dict) for item in items):
            return json_response({"error": "invalid_body", "message": "expected an event or an array"}, 400)
        if "cloudevents" in content_type and not all(item.get("specversion") == "1.0" for item in items):
            return json_response({"error": "invalid_cloudevent", "message": "specversion must be 1.0"}, 400)
        if self.require_valid_email:
            for item in items:
                email = _data(item).get("email")
                if email is not None and "@" not in str(email):
                    reason = f"event {item.get('id')}: email {email!r} is not an email address"
                    return json_response({"error": "invalid_email", "message": reason}, 422)
        key = request.header("Idempotency-Key") or ""
        with self._state:
            for index, item in enumerate(items):
                event_id = str(item.get("id") or (key if len(items) == 1 else f"{key}#{index}"))
                if event_id in self.events:
                    self.duplicates[event_id] += 1
                    continue
                meta = item.get("meta") if isinstance(item.get("meta"), dict) else {}
                kind, uid = _kind(item), _data(item).get("_uid") or item.get("subject") or meta.get("uid")
                self.events[event_id] = ReceivedEvent(
                    event_id,
                    kind,
                    uid,
                    request.params["name"],
                    item if self.keep_bodies else None,
                    dict(request.headers) if self.keep_bodies else {},
                    content_type,
                )
                if uid and kind:
                    self.last_kind[str(uid)] = kind
            self.accepted_requests += 1
            if self.keep_bodies:
                self.bodies.append((dict(request.headers), request.body))
            fail = self._fail_after_accept > 0
            if fail:
                self._fail_after_accept -= 1
        if fail:
            return json_response(
                {"error": "unavailable", "message": "stored, but the downstream failed"}, 503
            )
        return json_response({"accepted": len(items)}, 202)

    def _enrich(self, request: Request) -> Response:
        """An enrichment service: answers each member (a JSON object) with what it knows of them.

        The answer is a pure function of the body (an id derived from the email, the fields it was
        sent), as the Webhook User Enrichment page's example answers a member's fields.
        """
        try:
            body = request.json()
        except ValueError:
            return json_response({"error": "invalid_json", "message": "the body is not JSON"}, 400)
        if not isinstance(body, dict) or not body.get("email"):
            return json_response({"error": "invalid_body", "message": "an email is needed to enrich"}, 422)
        email = str(body["email"]).strip().lower()
        with self._state:
            self.enrich_requests[request.header("Idempotency-Key") or email] += 1
        digest = hashlib.sha256(email.encode()).hexdigest()[:12]
        return json_response({"partner_id": f"p-{digest}", "email": email, "fields_seen": sorted(body)})


def _data(item: dict[str, Any]) -> dict[str, Any]:
    data = item.get("data")
    return data if isinstance(data, dict) else {}


def _kind(item: dict[str, Any]) -> str | None:
    if item.get("lyticsevent"):
        return str(item["lyticsevent"])
    meta = item.get("meta")
    if isinstance(meta, dict) and meta.get("event"):
        return str(meta["event"])
    segment_events = _data(item).get("segment_events")
    if isinstance(segment_events, list) and segment_events and isinstance(segment_events[0], dict):
        return segment_events[0].get("event")
    return None


def connection_json(receiver: WebhookReceiver, auth_method: str | None = None, **extra: Any) -> str:
    """An ``AIRFLOW_CONN_*`` value for the receiver: its CA bundle and its authorization."""
    method = auth_method or {"oauth2": "oauth2_client_credentials"}.get(receiver.auth, receiver.auth)
    fields: dict[str, Any] = {"auth_method": method, "ca_bundle": str(receiver.tls.ca_bundle), **extra}
    conn: dict[str, Any] = {"conn_type": "webhooks", "extra": fields}
    if method == "oauth2_client_credentials":
        fields.setdefault("token_url", receiver.token_url)
        conn.update(login=receiver.client_id, password=receiver.client_secret)
    if method == "headers":
        fields.setdefault("request_headers", dict(receiver.required_headers))
        fields.setdefault("request_parameters", dict(receiver.required_params))
    return json.dumps(conn)


def started(directory: Path, auth: str = "none", token_lifetime: float = 3600.0) -> Iterator[WebhookReceiver]:
    """Start a receiver with a fresh certificate; stop it when the generator closes."""
    receiver = WebhookReceiver(make_tls(directory), auth=auth, token_lifetime=token_lifetime)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
