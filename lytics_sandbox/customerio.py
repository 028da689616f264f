"""A loopback stand-in for Customer.io's Track API (``POST /api/v2/batch``, ``GET /api/v1/accounts/region``).

Contract followed: Customer.io's Journeys Track API reference https://docs.customer.io/api/track/
and its invalid-request page https://docs.customer.io/journeys/invalid-api-requests (OpenAPI copy:
``api-evangelist/customer-io``, ``openapi/_original/customer-io-track-api-openapi.json``):

* Auth: HTTP Basic, Site ID : API Key; anything else answers ``401``.
* ``GET /api/v1/accounts/region`` -> ``{"url": ..., "data_center": "us", "environment_id": ...}``.
* ``POST /api/v2/batch`` ``{"batch": [{"type": "person", "identifiers": {"id"|"email"|"cio_id": ...},
  "action": "identify", "attributes": {...}}]}``: a request over 500 KB, an entry over 32 KB, an
  identify with more than 300 attributes or a name over 150 bytes, or an entry without an
  identifier is refused with ``400 {"meta": {"error": "..."}}`` and nothing in it is applied.
  Otherwise ``200 {}``: each person is created or updated (attributes merged).
* Fair-use limit: with :attr:`CustomerIOSandbox.rate_limit` ``(requests, seconds)`` set, requests
  over the count in a window answer ``429``; faults inject ``429`` / 5xx.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer, json_response

MAX_REQUEST_BYTES = 500 * 1024
MAX_ENTRY_BYTES = 32 * 1024
MAX_ATTRIBUTES = 300
MAX_NAME_BYTES = 150


class CustomerIOSandbox(SandboxHTTPServer):
    """Serves the Track API on 127.0.0.1 for one workspace.

    :param site_id: the workspace's Site ID.
    :param api_key: its Track API key.
    :param rate_limit: ``(requests, seconds)`` enforced per fixed window, or None.
    """

    def __init__(
        self,
        site_id: str = "sandbox-site",
        api_key: str = "sandbox-track-key",
        rate_limit: tuple[int, float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.site_id = site_id
        self.api_key = api_key
        self.rate_limit = rate_limit
        self.people: dict[str, dict[str, Any]] = {}
        self.identifies = 0
        self.requests_accepted = 0
        self.rate_limited = 0
        self.accepted_at: list[float] = []
        self._window = (0, 0)
        self._data_lock = threading.Lock()
        self.add_route("GET", "/api/v1/accounts/region", self._region, "region")
        self.add_route("POST", "/api/v2/batch", self._batch, "batch")

    @property
    def url(self) -> str:
        return self.base_url

    def connection(self, site_id: str | None = None, api_key: str | None = None) -> dict[str, Any]:
        """An Airflow ``customerio`` connection (JSON form) pointing at this stand-in."""
        return {
            "conn_type": "customerio",
            "host": self.base_url,
            "login": site_id or self.site_id,
            "password": api_key or self.api_key,
        }

    def reset(self) -> None:
        with self._data_lock:
            self.people.clear()
            self.identifies = self.requests_accepted = self.rate_limited = 0
            self.accepted_at.clear()
            self._window = (0, 0)

    def error_response(self, status: int, message: str, request: Request) -> Response:
        return json_response({"meta": {"error": message}}, status)

    def authenticate(self, request: Request) -> Response | None:
        header = request.header("Authorization") or ""
        try:
            pair = base64.b64decode(header[6:]).decode() if header.startswith("Basic ") else ""
        except ValueError:
            pair = ""
        if pair != f"{self.site_id}:{self.api_key}":
            return self.error_response(401, "Unauthorized request", request)
        return None

    def _over_limit(self) -> Response | None:
        if self.rate_limit is None:
            return None
        limit, seconds = self.rate_limit
        window = int(time.time() // seconds)
        with self._data_lock:
            current, used = self._window
            used = used if current == window else 0
            if used >= limit:
                self.rate_limited += 1
                return json_response({"meta": {"error": "Too Many Requests"}}, 429)
            self._window = (window, used + 1)
        return None

    def _region(self, request: Request) -> Response:
        return json_response({"url": self.base_url, "data_center": "us", "environment_id": 1})

    def _batch(self, request: Request) -> Response:
        limited = self._over_limit()
        if limited is not None:
            return limited
        if len(request.body) > MAX_REQUEST_BYTES:
            return self.error_response(
                400, f"batch request is larger than {MAX_REQUEST_BYTES} bytes", request
            )
        try:
            body = json.loads(request.body or b"")
        except ValueError:
            return self.error_response(400, "request body is not valid JSON", request)
        batch = body.get("batch") if isinstance(body, dict) else None
        if not isinstance(batch, list):
            return self.error_response(400, "batch must be an array", request)
        people: list[tuple[str, dict[str, Any]]] = []
        for index, entry in enumerate(batch):
            problem, key = _check(entry)
            if problem:
                return self.error_response(400, f"batch[{index}]: {problem}", request)
            people.append((str(key), entry.get("attributes") or {}))
        with self._data_lock:
            for key, attributes in people:
                self.people.setdefault(key, {}).update(attributes)
            self.identifies += len(people)
            self.requests_accepted += 1
            self.accepted_at.append(time.time())
        return json_response({})


def _check(entry: Any) -> tuple[str | None, str | None]:
    if not isinstance(entry, dict) or entry.get("type") != "person" or entry.get("action") != "identify":
        return "only person identify entries are served here", None
    if len(json.dumps(entry, separators=(",", ":")).encode()) > MAX_ENTRY_BYTES:
        return f"entry is larger than {MAX_ENTRY_BYTES} bytes", None
    identifiers = entry.get("identifiers") or {}
    kind = next((k for k in ("id", "email", "cio_id") if str(identifiers.get(k) or "").strip()), None)
    if kind is None:
        return "id attribute must be present", None
    if kind == "email" and "@" not in str(identifiers["email"]):
        return f"email {identifiers['email']!r} is not a valid email address", None
    attributes = entry.get("attributes") or {}
    if len(attributes) > MAX_ATTRIBUTES:
        return f"cannot identify more than {MAX_ATTRIBUTES} attributes in one request", None
    if any(len(str(name).encode()) > MAX_NAME_BYTES for name in attributes):
        return f"attribute name cannot be longer than {MAX_NAME_BYTES} bytes", None
    return None, f"{kind}:{str(identifiers[kind]).lower() if kind == 'email' else identifiers[kind]}"
