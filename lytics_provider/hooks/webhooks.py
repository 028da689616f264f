"""Webhooks: the hook (three authorization methods, on the REST hook base) and the event adapter.

The Lytics Webhooks integration (https://docs.lytics.com/docs/webhooks) authorizes a webhook in
one of three ways, and a ``webhooks`` connection holds one of them (extra ``auth_method``):

* ``headers``: "Provide authorization as request header or parameter": **Webhook Request
  Headers** (extra ``request_headers``, a mapping) and **Webhook Request Parameters** (extra
  ``request_parameters``, added to every URL's query);
* ``oauth2_client_credentials``: "OAuth 2.0 Client Credentials Grant": **Token URL** (extra
  ``token_url``), **Client ID** (Login), **Client Secret** (Password), **Additional Request
  Parameters** (extra ``additional_request_parameters``, sent with the token request). The token
  rides as ``Authorization: Bearer``; it is fetched again shortly before ``expires_in`` runs out
  and once on a 401 (the base's :class:`~lytics_provider.hooks.rest_auth.OAuth2Token`);
* ``none``: "Webhook endpoint does not require authorization".

Extra ``ca_bundle`` names a CA bundle file that signs the receiver's (and the token endpoint's)
certificate; verification is never turned off. Every header and parameter value is a secret: it
is redacted from logs and errors.

The adapter, :class:`WebhookDestination`, is an :class:`~lytics_provider.sync.events.EventDestination`:
it renders each event (Lytics default body, CloudEvents or a jsonnet Webhook Template; see
``hooks.webhook_payloads``), sends one request per event or, with Batch Events, one per batch,
and turns a 400/422 into a refusal of that event (a batch refused is bisected by the kit).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import requests
from requests.auth import AuthBase

from lytics_provider.hooks.rest import RestHook
from lytics_provider.hooks.rest_auth import Credentials, OAuth2ClientCredentials, OAuth2Token
from lytics_provider.hooks.webhook_payloads import EventRenderer, RenderError
from lytics_provider.pipeline.http import HttpClient, PermanentServiceError
from lytics_provider.sync.act import RowLevelBatchError
from lytics_provider.sync.events import AudienceEvent, EventDestination
from lytics_provider.sync.identifiers import lookup_field

AUTH_METHODS = ("headers", "oauth2_client_credentials", "none")
ROW_LEVEL_STATUSES = frozenset({400, 422})
"""Statuses that refuse the body sent (an event), not the job: the event lands in rejects."""
REFUSED_BEFORE_ANY_ACCEPTED = 20
"""A run whose first this-many events are all refused fails: the URL, method or template is wrong."""
_BATCH_NAMESPACE = uuid.UUID("0b8f5e0e-2f4b-4c0e-8f59-54d1f1d0a6c1")


def _mapping(extra: Mapping[str, Any], name: str) -> dict[str, str]:
    """A mapping extra (a JSON object or its text) as ``str -> str``."""
    value = extra.get(name) or {}
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else {}
    if not isinstance(value, dict):
        raise ValueError(f"extra {name!r} must be a mapping of names to values")
    return {str(k): str(v) for k, v in value.items()}


def auth_method(extra: Mapping[str, Any]) -> str:
    """The connection's authorization method (extra ``auth_method``; guessed from the extras when unset)."""
    method = str(extra.get("auth_method") or "").strip().lower()
    if method:
        return method
    if extra.get("token_url"):
        return "oauth2_client_credentials"
    if extra.get("request_headers") or extra.get("request_parameters"):
        return "headers"
    return "none"


class _QueryParams(AuthBase):
    """Adds the Webhook Request Parameters to every URL's query (the values are never shown)."""

    def __init__(self, params: Mapping[str, str]) -> None:
        self._params = dict(params)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.prepare_url(request.url, self._params)
        return request

    def __repr__(self) -> str:
        return f"_QueryParams({sorted(self._params)!r})"


@dataclass(frozen=True)
class WebhookAuth:
    """The three authorization methods of a Lytics webhook, read from one connection."""

    def credentials(self, conn: Any) -> Credentials | None:
        extra = conn.extra_dejson
        method = auth_method(extra)
        if method == "none":
            return Credentials(identity="none")
        if method == "headers":
            headers = _mapping(extra, "request_headers")
            params = _mapping(extra, "request_parameters")
            secrets = tuple(v for v in [*headers.values(), *params.values()] if len(v) >= 4)
            return Credentials(
                headers=headers,
                requests_auth=_QueryParams(params) if params else None,
                secrets=secrets,
                identity=",".join(sorted(headers)) or "params",
            )
        return WebhookOAuth2().credentials(conn)


@dataclass(frozen=True)
class WebhookOAuth2(OAuth2ClientCredentials):
    """OAuth2 client credentials with the webhook's extra ``additional_request_parameters``."""

    def token_params(self, extra: Mapping[str, Any]) -> Mapping[str, str]:
        return _mapping(extra, "additional_request_parameters")


class WebhooksHook(RestHook):
    """Sends requests to webhook URLs with the authorization of a ``webhooks`` connection.

    The URLs are absolute (each job names its Webhook URL); Host is not used.

    :param webhooks_conn_id: the Airflow connection id.
    """

    conn_type: ClassVar[str] = "webhooks"
    hook_name: ClassVar[str] = "Webhooks"
    auth = WebhookAuth()  # type: ignore[assignment]
    credentials_hint: ClassVar[str] = (
        "uses OAuth 2.0 Client Credentials and needs the Client ID in Login, the Client Secret in Password "
        "and the extra token_url."
    )
    default_headers: ClassVar[Mapping[str, str]] = {"Accept": "application/json"}

    verify: bool | str = True

    def validate_extra(self) -> None:
        """``auth_method`` is one of the three; ``ca_bundle`` is a readable file."""
        method = auth_method(self.extra)
        if method not in AUTH_METHODS:
            raise ValueError(
                f"Connection {self.conn_id!r}: extra auth_method {method!r} is unknown; use one of "
                f"{', '.join(AUTH_METHODS)}"
            )
        bundle = self.extra.get("ca_bundle")
        if bundle and not os.path.isfile(str(bundle)):
            raise ValueError(
                f"Connection {self.conn_id!r}: extra ca_bundle {bundle!r} is not a file; give the path of "
                "the PEM file of the CA that signed the webhook's certificate"
            )

    def default_api_url(self) -> str:
        return ""

    def configure_client(self, client: HttpClient, credentials: Credentials) -> None:
        """Verify TLS against the connection's ``ca_bundle`` (receiver and token endpoint alike)."""
        bundle = self.extra.get("ca_bundle")
        if bundle:
            self.verify = str(bundle)
            client.session.verify = self.verify
            if isinstance(credentials.requests_auth, OAuth2Token):
                credentials.requests_auth.verify = str(bundle)

    def auth_fix(self) -> str:
        return "Check the webhook authorization of the connection (headers, parameters or OAuth client)."

    def send(self, method: str, url: str, body: bytes, headers: Mapping[str, str]) -> requests.Response:
        """One webhook request (retried on 429 / 5xx / dropped connections); the 2xx response."""
        client = self.get_conn()  # reads ca_bundle; passed per request, as REQUESTS_CA_BUNDLE would win
        return client.request(method, url, data=body, headers=dict(headers), verify=self.verify)

    def check_call(self) -> str:
        client = self.get_conn()
        token = client.auth if isinstance(client.auth, OAuth2Token) else None
        if token is None:
            return "no token to fetch; each job names its Webhook URL"
        token.token()
        return "the token endpoint issued an access token"


class WebhookDestination(EventDestination):
    """Audience Triggers Webhook: each event to the Webhook URL, alone or in batches of Batch Size.

    :param hook: the connection's hook.
    :param renderer: builds each event's URL, headers and body.
    :param http_method: "HTTP Method" (default POST).
    :param batch_events: "Batch Events": send up to ``batch_size`` events as one JSON array.
    """

    def __init__(
        self,
        *,
        hook: WebhooksHook,
        renderer: EventRenderer,
        http_method: str = "POST",
        batch_events: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hook = hook
        self.renderer = renderer
        self.http_method = http_method.upper()
        self.batch_events = batch_events
        self.requests = 0
        self.accepted = 0
        self.refused = 0

    def describe(self) -> dict[str, Any]:
        return {
            "webhook": self.renderer.shown_url,
            "http_method": self.http_method,
            "format": self.renderer.format_name,
            "batch_events": self.batch_events,
            "batch_size": self.batch_size,
        }

    def describe_after(self) -> dict[str, Any]:
        return {"requests": self.requests, "http_calls": self.hook.calls, "refused_events": self.refused}

    def send_events(self, events: list[AudienceEvent]) -> dict[str, str | None]:
        refused: dict[str, str | None] = {}
        rendered = []
        for event in events:
            try:
                rendered.append(self.renderer.render(event))
            except RenderError as exc:
                refused[event.id] = str(exc)
        if self.batch_events:
            by_url: dict[str, list[Any]] = {}
            for one in rendered:
                by_url.setdefault(one.url, []).append(one)
            for url, group in by_url.items():
                ids = [one.event_id for one in group]
                body, headers = self.renderer.batch_body(group)
                headers["Idempotency-Key"] = str(uuid.uuid5(_BATCH_NAMESPACE, "\x1f".join(ids)))
                reason = self._post(url, body, headers)
                if reason is None:
                    self.accepted += len(group)
                elif len(events) == 1:
                    refused[ids[0]] = self._refused(reason)
                else:
                    raise RowLevelBatchError(reason)
            return refused
        for one in rendered:
            reason = self._post(one.url, one.body, one.headers)
            if reason is None:
                self.accepted += 1
            else:
                refused[one.event_id] = self._refused(reason)
        return refused

    def _refused(self, reason: str) -> str:
        """Count one refused event; fail the task when nothing was accepted before many refusals."""
        self.refused += 1
        if not self.accepted and self.refused >= REFUSED_BEFORE_ANY_ACCEPTED:
            raise self.hook.errors.permanent(
                f"the webhook refused the first {self.refused} events of this run and accepted none (last: "
                f"{reason}); check webhook_url, http_method and the template, then run again",
                400,
            )
        return reason

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> str | None:
        """Send one request; the receiver's reason when it refused the body (400 / 422), else None."""
        return self._answer(url, body, headers)[1]

    def _answer(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[requests.Response | None, str | None]:
        """Send one request: ``(response, None)``, or ``(None, reason)`` when the body was refused."""
        self.requests += 1
        try:
            return self.hook.send(self.http_method, url, body, headers), None
        except PermanentServiceError as exc:
            if exc.status in ROW_LEVEL_STATUSES:
                return None, f"the webhook refused the event ({exc.status}): {_reason(exc)}"
            raise


class WebhookEnrichmentDestination(WebhookDestination):
    """Webhook User Enrichment: one request per entering member; each JSON answer is kept, with an
    ``origin`` holding the member's BY fields, in a JSON-lines file for the stream.

    :param responses: the run's file of answers (``{"event_id", "record"}`` per line); a retried
        batch appends again, so the reader keeps the first line of each event id.
    :param origin_fields: the BY fields put under ``origin`` (the member's identity fields).
    """

    def __init__(self, *, responses: Path, origin_fields: Sequence[str], **kwargs: Any) -> None:
        kwargs.update(batch_events=False, events=("enter",))
        super().__init__(**kwargs)
        self.responses = responses
        self.origin_fields = list(dict.fromkeys(["_uid", *origin_fields]))

    def payload(self, record: dict[str, Any]) -> dict[str, Any]:
        """The Export Fields, plus the BY fields (the request carries both)."""
        fields = super().payload(record)
        for name in self.origin_fields:
            value = lookup_field(record, name)
            if value not in (None, "", []):
                fields.setdefault(name, value)
        return fields

    def send_events(self, events: list[AudienceEvent]) -> dict[str, str | None]:
        refused: dict[str, str | None] = {}
        self.responses.parent.mkdir(parents=True, exist_ok=True)
        with self.responses.open("a", encoding="utf-8") as out:
            for event in events:
                try:
                    one = self.renderer.render(event)
                except RenderError as exc:
                    refused[event.id] = str(exc)
                    continue
                response, reason = self._answer(one.url, one.body, one.headers)
                answer = _json_object(response) if response is not None else None
                if response is not None and answer is None:
                    reason = f"the webhook answered {response.status_code} without a JSON object"
                if answer is None:
                    refused[event.id] = self._refused(reason or "no answer")
                    continue
                self.accepted += 1
                fields = event.fields
                origin = {k: fields[k] for k in self.origin_fields if fields.get(k) not in (None, "")}
                origin.setdefault("_uid", event.uid)
                record = {**answer, "origin": origin}
                out.write(json.dumps({"event_id": event.id, "record": record}, default=str) + "\n")
            out.flush()
            os.fsync(out.fileno())
        return refused


def _json_object(response: requests.Response) -> dict[str, Any] | None:
    try:
        answer = response.json()
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def _reason(exc: PermanentServiceError) -> str:
    body = exc.body
    if isinstance(body, dict):
        for key in ("message", "error", "detail"):
            if body.get(key):
                return str(body[key])[:300]
    return str(body or exc)[:300]
