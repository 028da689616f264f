"""Loopback stand-in for the Brevo API v3: contact lists, contact imports and its rate limits.

Contract followed (Brevo's published API reference, https://developers.brevo.com/reference; no
vendor code or spec is copied):

* auth, https://developers.brevo.com/docs/how-it-works : the ``api-key`` header on every call;
  a missing or wrong key is 401 ``{"code": "unauthorized", "message": "Key not found"}``;
  ``GET /v3/account`` answers for a valid key;
* lists, https://developers.brevo.com/reference/get-lists : ``GET /v3/contacts/lists``
  (``limit`` at most 50, ``offset``; ``{"lists": [{"id", "name", ...}], "count"}``);
* import, https://developers.brevo.com/reference/import-contacts : ``POST /v3/contacts/import``
  with ``jsonBody`` (``[{"email", "attributes"}]``), ``listIds``, ``updateExistingContacts`` and
  ``emptyContactsAttributes``; 202 ``{"processId"}``; a body over 10 MB is refused (400); the
  stand-in applies the import at once (``GET /v3/processes/{id}`` answers ``completed``);
  attributes the account lacks are ignored, as documented;
* list removal, https://developers.brevo.com/reference/remove-contact-from-list :
  ``POST /v3/contacts/lists/{listId}/contacts/remove`` with ``emails`` (at most 150); 201
  ``{"contacts": {"success": [...], "failure": [...]}}``;
* rate limits, https://developers.brevo.com/docs/api-limits and
  https://developers.brevo.com/docs/limit-headers : the ``/v3/contacts`` endpoints allow 10 requests
  a second; every answer carries ``x-sib-ratelimit-limit``, ``-remaining`` and ``-reset`` (seconds
  until the window resets); over the limit the answer is 429 ``{"code": "too_many_requests"}``.
  The window is settable (:attr:`BrevoSandbox.window`).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer, json_response

REMOVE_LIMIT = 150
IMPORT_BODY_LIMIT = 10 * 1024 * 1024
CALLS_PER_WINDOW = 10
WINDOW_SECONDS = 1.0


def error(code: str, message: str, status: int) -> Response:
    return json_response({"code": code, "message": message}, status)


@dataclass
class BrevoData:
    """Contacts by email, lists and their members; tests read and change it directly."""

    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    lists: dict[int, dict[str, Any]] = field(default_factory=dict)
    attributes: set[str] = field(default_factory=lambda: {"FIRSTNAME", "LASTNAME", "SMS"})
    imports: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self._ids = itertools.count(2)

    def add_list(self, name: str) -> int:
        with self.lock:
            list_id = next(self._ids)
            self.lists[list_id] = {"id": list_id, "name": name, "folderId": 1}
            return list_id

    def members(self, list_id: int) -> set[str]:
        return {email for email, c in self.contacts.items() if list_id in c["listIds"]}


class BrevoSandbox(SandboxHTTPServer):
    """Brevo's contacts endpoints with the per-second rate limit and its headers."""

    def __init__(self, data: BrevoData | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data = data or BrevoData()
        self.api_key = "xkeysib-sandbox"
        self.window = WINDOW_SECONDS
        self.calls_per_window = CALLS_PER_WINDOW
        self.recent: deque[float] = deque()
        self.rate_limited = 0
        self._rate_lock = threading.Lock()
        self.history: list[float] = []
        """When each call within the limit was served (``time.monotonic``), for peak-rate readings."""
        self.add_route("GET", r"/v3/account", self._account, "account")
        self.add_route("GET", r"/v3/contacts/lists", self._lists, "lists")
        self.add_route("POST", r"/v3/contacts/import", self._import, "import")
        self.add_route("GET", r"/v3/processes/(?P<id>\d+)", self._process, "process")
        self.add_route("POST", r"/v3/contacts/lists/(?P<list>\d+)/contacts/remove", self._remove, "remove")

    def reset(self) -> None:
        self.data = BrevoData()
        self.api_key = "xkeysib-sandbox"
        self.window, self.calls_per_window = WINDOW_SECONDS, CALLS_PER_WINDOW
        self.recent.clear()
        self.history.clear()
        self.rate_limited = 0
        self.faults.clear()
        self.reset_counters()

    def peak(self, window: float | None = None) -> int:
        """The most calls served within any ``window`` seconds (default the rate-limit window)."""
        span = self.window if window is None else window
        times, best, start = sorted(self.history), 0, 0
        for end, moment in enumerate(times):
            while times[start] <= moment - span:
                start += 1
            best = max(best, end - start + 1)
        return best

    def connection(self) -> dict[str, Any]:
        """An Airflow connection (JSON form): Host = API URL, Password = API key."""
        return {"conn_type": "brevo", "host": self.base_url, "password": self.api_key}

    def authenticate(self, request: Request) -> Response | None:
        if request.header("api-key") != self.api_key:
            return error("unauthorized", "Key not found", 401)
        if not request.path.startswith("/v3/contacts"):
            return None
        with self._rate_lock:
            now = time.monotonic()
            while self.recent and self.recent[0] <= now - self.window:
                self.recent.popleft()
            reset = math.ceil(self.recent[0] + self.window - now) if self.recent else math.ceil(self.window)
            headers = {
                "x-sib-ratelimit-limit": str(self.calls_per_window),
                "x-sib-ratelimit-reset": str(max(1, reset)),
            }
            if len(self.recent) >= self.calls_per_window:
                self.rate_limited += 1
                response = error("too_many_requests", "The expected rate limit is exceeded.", 429)
                response.headers.update({**headers, "x-sib-ratelimit-remaining": "0"})
                return response
            self.recent.append(now)
            self.history.append(now)
        return None

    def _account(self, request: Request) -> Response:
        return json_response(
            {"email": "owner@example.com", "companyName": "Sandbox", "plan": [{"type": "free"}]}
        )

    def _lists(self, request: Request) -> Response:
        limit = min(int(request.query.get("limit", "10")), 50)
        offset = int(request.query.get("offset", "0"))
        lists = sorted(self.data.lists.values(), key=lambda v: v["id"])
        return json_response({"lists": lists[offset : offset + limit], "count": len(lists)})

    def _import(self, request: Request) -> Response:
        if len(request.body) > IMPORT_BODY_LIMIT:
            return error("invalid_parameter", "jsonBody is larger than 10 MB", 400)
        body = request.json() or {}
        rows = body.get("jsonBody")
        list_ids = [int(i) for i in body.get("listIds") or []]
        if not isinstance(rows, list) or not rows:
            return error("missing_parameter", "jsonBody, fileBody or fileUrl is required", 400)
        unknown = [i for i in list_ids if i not in self.data.lists]
        if not list_ids or unknown:
            return error("invalid_parameter", f"listIds {unknown or list_ids} not found", 400)
        update = body.get("updateExistingContacts", True)
        with self.data.lock:
            for row in rows:
                email = str(row.get("email") or "").strip().lower()
                if not email:
                    continue
                contact = self.data.contacts.get(email)
                attributes = {
                    k: v for k, v in (row.get("attributes") or {}).items() if k in self.data.attributes
                }
                if contact is None:
                    contact = self.data.contacts[email] = {"email": email, "attributes": {}, "listIds": set()}
                elif not update:
                    continue
                contact["attributes"].update(attributes)
                contact["listIds"].update(list_ids)
            process = len(self.data.imports) + 1
            self.data.imports.append({"id": process, "rows": len(rows), "listIds": list_ids})
        return json_response({"processId": process}, 202)

    def _process(self, request: Request) -> Response:
        process = int(request.params["id"])
        if not 1 <= process <= len(self.data.imports):
            return error("document_not_found", "Process not found", 404)
        return json_response({"id": process, "status": "completed", "name": "import"})

    def _remove(self, request: Request) -> Response:
        list_id = int(request.params["list"])
        if list_id not in self.data.lists:
            return error("document_not_found", "List ID does not exist", 404)
        emails = [str(e).strip().lower() for e in (request.json() or {}).get("emails") or []]
        if not emails or len(emails) > REMOVE_LIMIT:
            return error("invalid_parameter", f"emails must hold 1 to {REMOVE_LIMIT} addresses", 400)
        success, failure = [], []
        with self.data.lock:
            for email in emails:
                contact = self.data.contacts.get(email)
                if contact is not None and list_id in contact["listIds"]:
                    contact["listIds"].discard(list_id)
                    success.append(email)
                else:
                    failure.append(email)
        return json_response({"contacts": {"success": success, "failure": failure}}, 201)
