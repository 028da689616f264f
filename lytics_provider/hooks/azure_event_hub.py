"""Hook and destination adapter for Azure Event Hubs over its REST API ("Send batch events").

Contract (https://learn.microsoft.com/en-us/rest/api/eventhub/send-batch-events): ``POST
https://{namespace}.servicebus.windows.net/{event hub}/messages?timeout=60&api-version=2014-01``
with ``Content-Type: application/vnd.microsoft.servicebus.json`` and the body
``[{"Body": "<text>", "UserProperties": {...}}, ...]``; 201 when accepted. The ``Authorization``
header is a SAS token (https://learn.microsoft.com/en-us/rest/api/eventhub/generate-sas-token)
signed with the shared access key of the connection string. A batch is at most 1 MB
(https://learn.microsoft.com/en-us/azure/event-hubs/event-hubs-quotas); larger event batches are
split, and one event larger than that is a reject.

Errors follow the REST hook base: 401/403 (bad or expired token, missing ``Send`` claim, disabled
hub, exceeded quota) and 400/404 fail the task at once; 429/503 ``ServerBusy`` are retried after
``Retry-After``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlsplit

import requests
from requests.auth import AuthBase

from lytics_provider.hooks.rest import RestHook
from lytics_provider.hooks.rest_auth import Credentials
from lytics_provider.hooks.size_groups import size_groups
from lytics_provider.sync.event_body import compact_json, event_attributes, event_document
from lytics_provider.sync.events import AudienceEvent, EventDestination

BATCH_CONTENT_TYPE = "application/vnd.microsoft.servicebus.json"
MAX_BATCH_BYTES = 1024 * 1024
API_VERSION = "2014-01"
TOKEN_TTL = 3600


class ConnectionStringError(ValueError):
    """An Event Hub connection string that lacks a part or is not ``key=value;`` pairs."""


@dataclass(frozen=True)
class EventHubConnectionString:
    """The parts of ``Endpoint=sb://<namespace>/;SharedAccessKeyName=..;SharedAccessKey=..[;EntityPath=..]``."""

    host: str
    key_name: str
    key: str
    entity_path: str | None = None

    @classmethod
    def parse(cls, text: str) -> EventHubConnectionString:
        parts: dict[str, str] = {}
        for piece in (text or "").strip().split(";"):
            if not piece.strip():
                continue
            name, sep, value = piece.partition("=")
            if not sep:
                raise ConnectionStringError("the Event Hub Connection String is not Name=value; pairs")
            parts[name.strip().lower()] = value.strip()
        required = ("Endpoint", "SharedAccessKeyName", "SharedAccessKey")
        missing = [name for name in required if not parts.get(name.lower())]
        if missing:
            raise ConnectionStringError(
                f"the Event Hub Connection String lacks {', '.join(missing)}; copy it from the event hub's "
                "or namespace's Shared access policies (Connection string-primary key)"
            )
        host = urlsplit(parts["endpoint"]).netloc or parts["endpoint"].split("://")[-1].strip("/")
        return cls(
            host, parts["sharedaccesskeyname"], parts["sharedaccesskey"], parts.get("entitypath") or None
        )


def sas_token(resource_uri: str, key_name: str, key: str, expiry: int) -> str:
    """``SharedAccessSignature sr=..&sig=..&se=..&skn=..`` for ``resource_uri`` until ``expiry``."""
    encoded = quote_plus(resource_uri)
    digest = hmac.new(key.encode(), f"{encoded}\n{expiry}".encode(), hashlib.sha256).digest()
    signature = quote_plus(base64.b64encode(digest).decode())
    return f"SharedAccessSignature sr={encoded}&sig={signature}&se={expiry}&skn={key_name}"


class SasAuth(AuthBase):
    """Signs each request for its namespace (``sr`` = ``https://<namespace>``), renewing the token
    a minute before it expires; the key never leaves this object (``repr`` hides it)."""

    def __init__(
        self, parts: EventHubConnectionString, ttl: int = TOKEN_TTL, clock: Callable[[], float] = time.time
    ) -> None:
        self.parts = parts
        self.ttl = ttl
        self.clock = clock
        self._token = ""
        self._expiry = 0

    def token(self) -> str:
        now = int(self.clock())
        if now >= self._expiry - 60:
            self._expiry = now + self.ttl
            resource = f"https://{self.parts.host}"
            self._token = sas_token(resource, self.parts.key_name, self.parts.key, self._expiry)
        return self._token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self.token()
        return request

    def __repr__(self) -> str:
        return f"SasAuth(key_name={self.parts.key_name!r}, key='***')"


@dataclass(frozen=True)
class EventHubSas:
    """The REST hook auth kind: the connection's Password holds the Event Hub Connection String."""

    def credentials(self, conn: Any) -> Credentials | None:
        text = conn.password or ""
        if not text:
            return None
        parts = EventHubConnectionString.parse(text)
        return Credentials(requests_auth=SasAuth(parts), secrets=(parts.key, text), identity=parts.key_name)


class AzureEventHubHook(RestHook):
    """Send events to Azure Event Hubs with the connection string of an ``azure_event_hub`` connection.

    :param azure_event_hub_conn_id: the Airflow connection; Password holds the Event Hub Connection
        String (its ``Endpoint`` names the namespace; ``EntityPath``, when present, the event hub).
    """

    conn_type = "azure_event_hub"
    hook_name = "Azure Event Hub"
    auth = EventHubSas()
    credentials_hint = "needs the Event Hub Connection String in Password."

    batches_sent = 0

    def connection_string(self) -> EventHubConnectionString:
        """The parsed connection string of the connection."""
        conn = self.get_connection(self.conn_id)
        if not conn.password:
            raise ValueError(f"Connection {self.conn_id!r} {self.credentials_hint}")
        return EventHubConnectionString.parse(conn.password)

    def default_api_url(self) -> str:
        """``https://<namespace>`` from the connection string's ``Endpoint``."""
        return f"https://{self.connection_string().host}"

    def auth_fix(self) -> str:
        return (
            "Check the Event Hub Connection String: its policy needs the Send claim, and the event hub "
            "must exist and be enabled in that namespace."
        )

    def event_hub(self, configured: str | None) -> str:
        """The event hub a job sends to: ``configured``, else the connection string's ``EntityPath``."""
        hub = configured or self.connection_string().entity_path
        if not hub:
            raise ValueError(
                f"Connection {self.conn_id!r} names no event hub (no EntityPath); set event_hub in the job"
            )
        return hub

    def send_batch(self, hub: str, items: list[dict[str, Any]]) -> None:
        """POST one batch (``[{"Body": ..., "UserProperties": ...}]``, at most 1 MB) to ``hub``."""
        body = compact_json(items).encode()
        if len(body) > MAX_BATCH_BYTES:
            raise ValueError(
                f"a batch of {len(body)} bytes is over the Event Hubs limit of {MAX_BATCH_BYTES}"
            )
        self.request(
            "POST",
            f"/{quote_plus(hub)}/messages",
            params={"timeout": "60", "api-version": API_VERSION},
            data=body,
            headers={"Content-Type": BATCH_CONTENT_TYPE},
        )
        self.batches_sent += 1

    def test_connection(self) -> tuple[bool, str]:
        """Check the connection string (Event Hubs has no read call a Send-only policy may make)."""
        try:
            parts = self.connection_string()
        except Exception as exc:
            return False, str(exc)
        hub = parts.entity_path or "set per job (event_hub)"
        return True, (
            f"Connection string parsed: namespace {parts.host}, policy {parts.key_name}, event hub {hub}. "
            "The first batch a job sends checks the key."
        )


def batch_item(event: AudienceEvent) -> dict[str, Any]:
    """One event of a batch: the event document as ``Body``, its id and kind as ``UserProperties``."""
    return {"Body": compact_json(event_document(event)), "UserProperties": event_attributes(event)}


def split_by_size(items: list[dict[str, Any]], limit: int = MAX_BATCH_BYTES) -> list[list[dict[str, Any]]]:
    """Consecutive groups whose JSON array stays within ``limit`` bytes (an item over it alone)."""
    return size_groups(items, lambda item: len(compact_json(item).encode()) + 1, limit - 2)


class EventHubEventDestination(EventDestination):
    """Audience events to one event hub, in batches of at most 1 MB.

    :param hook: the Event Hub hook.
    :param hub: the event hub.
    """

    def __init__(self, hook: AzureEventHubHook, hub: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hook = hook
        self.hub = hub

    def send_events(self, events: list[AudienceEvent]) -> dict[str, str | None]:
        refused: dict[str, str | None] = {}
        items = []
        for event in events:
            item = batch_item(event)
            size = len(compact_json([item]).encode())
            if size > MAX_BATCH_BYTES:
                refused[event.id] = (
                    f"the event is {size} bytes; Event Hubs accepts at most {MAX_BATCH_BYTES} bytes per "
                    "batch (export fewer fields)"
                )
                continue
            items.append(item)
        for group in split_by_size(items):
            self.hook.send_batch(self.hub, group)
        return refused

    def describe(self) -> dict[str, Any]:
        return {"event_hub": self.hub, "events": list(self.events)}

    def describe_after(self) -> dict[str, Any]:
        return {"requests": self.hook.batches_sent, "api_calls": self.hook.calls}
