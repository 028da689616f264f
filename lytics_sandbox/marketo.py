"""Loopback stand-in for the Marketo REST API: OAuth tokens, leads, static lists and its limits.

Contract followed (Adobe's published Marketo developer documentation; no vendor code or spec is
copied):

* authentication, https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/authentication :
  ``GET`` or ``POST /identity/oauth/token`` with ``grant_type=client_credentials``, ``client_id``
  and ``client_secret`` (query or form body); the answer is ``access_token``, ``token_type``
  ``bearer``, ``expires_in`` (3599 s) and ``scope``; wrong credentials are HTTP 401
  ``{"error": "invalid_client", ...}``. Calls carry ``Authorization: Bearer``;
* error envelope, https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/error-codes :
  response-level errors are HTTP 200 with ``{"requestId", "success": false, "errors": [{"code",
  "message"}]}`` (601 token invalid, 602 token expired, 606 more than 100 calls in 20 seconds,
  607 daily quota reached, 1003 bad request); record-level errors are ``result[]`` entries with
  ``status: "skipped"`` and ``reasons``; a body over 1 MB is HTTP 413;
* leads, https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/lead-database/leads :
  ``POST /rest/v1/leads.json`` (``action`` createOrUpdate / createOnly / updateOnly,
  ``lookupField``, at most 300 ``input`` records; one ``result`` per record, in order: ``id`` and
  ``status`` created / updated / skipped), ``GET /rest/v1/leads.json?filterType=email&filterValues=``
  (at most 300 values);
* static lists,
  https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/lead-database/static-lists :
  ``GET /rest/v1/lists.json`` (``name``), ``POST`` / ``DELETE /rest/v1/lists/{listId}/leads.json``
  with ``input: [{"id"}]`` (at most 300; result ``added`` / ``removed`` / ``skipped`` with reason
  1004 when the lead is not there), ``GET /rest/v1/lists/{listId}/leads.json``.

The 20-second window (:attr:`MarketoSandbox.window`) and the daily quota are settable, so a
benchmark can run the same limit faster.
"""

from __future__ import annotations

import itertools
import re
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer, json_response

BATCH_LIMIT = 300
CALLS_PER_WINDOW = 100
WINDOW_SECONDS = 20.0
TOKEN_LIFETIME = 3599
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def envelope_error(code: str, message: str) -> Response:
    """Marketo's response-level error: HTTP 200, ``success: false``."""
    return json_response(
        {
            "requestId": f"{uuid.uuid4().hex[:4]}#{uuid.uuid4().hex[:11]}",
            "success": False,
            "errors": [{"code": code, "message": message}],
        }
    )


def ok(result: list[dict[str, Any]], **extra: Any) -> Response:
    return json_response(
        {
            "requestId": f"{uuid.uuid4().hex[:4]}#{uuid.uuid4().hex[:11]}",
            "result": result,
            "success": True,
            **extra,
        }
    )


@dataclass
class MarketoData:
    """Leads by id, static lists and their members; tests read and change it directly."""

    leads: dict[int, dict[str, Any]] = field(default_factory=dict)
    lists: dict[int, dict[str, Any]] = field(default_factory=dict)
    members: dict[int, set[int]] = field(default_factory=dict)
    fields: set[str] = field(default_factory=lambda: {"email", "firstName", "lastName", "company", "city"})

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self._ids = itertools.count(1001)
        self.by_email = {str(v.get("email")).lower(): k for k, v in self.leads.items()}

    def add_list(self, name: str) -> int:
        with self.lock:
            list_id = next(self._ids)
            self.lists[list_id] = {"id": list_id, "name": name}
            self.members[list_id] = set()
            return list_id

    def list_emails(self, list_id: int) -> set[str]:
        return {self.leads[i]["email"] for i in self.members.get(list_id, set())}


class MarketoSandbox(SandboxHTTPServer):
    """Marketo's identity and REST endpoints with the 100-calls-per-20-seconds limit and a daily quota."""

    def __init__(self, data: MarketoData | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data = data or MarketoData()
        self.client_id, self.client_secret = "sandbox-client", "sandbox-secret"
        self.window = WINDOW_SECONDS
        self.calls_per_window = CALLS_PER_WINDOW
        self.daily_quota = 50_000
        self.tokens: dict[str, float] = {}
        self.expired: set[str] = set()
        self.recent: deque[float] = deque()
        self.counted = 0
        self.rate_limited = 0
        self._rate_lock = threading.Lock()
        self.history: list[float] = []
        """When each call within the limit was served (``time.monotonic``), for peak-rate readings."""
        self.add_route("GET", r"/identity/oauth/token", self._token, "token")
        self.add_route("POST", r"/identity/oauth/token", self._token, "token")
        self.add_route("POST", r"/rest/v1/leads\.json", self._sync_leads, "leads")
        self.add_route("GET", r"/rest/v1/leads\.json", self._get_leads, "get_leads")
        self.add_route("GET", r"/rest/v1/lists\.json", self._lists, "lists")
        self.add_route("POST", r"/rest/v1/lists/(?P<list>\d+)/leads\.json", self._add, "list_add")
        self.add_route("DELETE", r"/rest/v1/lists/(?P<list>\d+)/leads\.json", self._remove, "list_remove")

    def reset(self) -> None:
        self.data = MarketoData()
        self.client_id, self.client_secret = "sandbox-client", "sandbox-secret"
        self.window, self.calls_per_window, self.daily_quota = WINDOW_SECONDS, CALLS_PER_WINDOW, 50_000
        self.tokens.clear()
        self.expired.clear()
        self.recent.clear()
        self.history.clear()
        self.counted = self.rate_limited = 0
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
        """An Airflow connection (JSON form): Host = the REST URL."""
        return {
            "conn_type": "marketo",
            "host": self.base_url,
            "login": self.client_id,
            "password": self.client_secret,
        }

    # -- auth and limits -----------------------------------------------------------------------
    def _token(self, request: Request) -> Response:
        values = dict(request.query)
        if request.body:
            values.update(dict(parse_qsl(request.body.decode())))
        if values.get("client_id") != self.client_id or values.get("client_secret") != self.client_secret:
            return json_response(
                {"error": "invalid_client", "error_description": "Bad client credentials"}, 401
            )
        token = secrets.token_hex(16)
        self.tokens[token] = time.time() + TOKEN_LIFETIME
        return json_response(
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": TOKEN_LIFETIME,
                "scope": "api@example.com",
            }
        )

    def expire_tokens(self) -> None:
        """Every token given out so far is expired (602 on use)."""
        self.expired.update(self.tokens)

    def authenticate(self, request: Request) -> Response | None:
        if request.route == "token":
            return None
        header = request.header("Authorization") or ""
        token = header[7:] if header.lower().startswith("bearer ") else request.query.get("access_token", "")
        if token in self.expired:
            return envelope_error("602", "Access token expired")
        if token not in self.tokens:
            return envelope_error("601", "Access token invalid")
        with self._rate_lock:
            now = time.monotonic()
            while self.recent and self.recent[0] <= now - self.window:
                self.recent.popleft()
            if len(self.recent) >= self.calls_per_window:
                self.rate_limited += 1
                return envelope_error(
                    "606", f"Max rate limit '{self.calls_per_window}' exceeded with in '{self.window:g}' secs"
                )
            if self.counted >= self.daily_quota:
                return envelope_error("607", "Daily quota reached")
            self.recent.append(now)
            self.history.append(now)
            self.counted += 1
        if len(request.body) > 1_000_000:
            return json_response({"error": "Request Entity Too Large"}, 413)
        return None

    # -- leads ---------------------------------------------------------------------------------
    def _sync_leads(self, request: Request) -> Response:
        body = request.json() or {}
        records = body.get("input") or []
        action = body.get("action") or "createOrUpdate"
        lookup = body.get("lookupField") or "email"
        if not records or len(records) > BATCH_LIMIT:
            return envelope_error("1003", f"input must hold 1 to {BATCH_LIMIT} records")
        if lookup != "email":
            return envelope_error("1003", f"lookupField {lookup!r} is not served here")
        result: list[dict[str, Any]] = []
        with self.data.lock:
            for record in records:
                unknown = sorted(set(record) - self.data.fields)
                email = str(record.get("email") or "").strip().lower()
                if unknown:
                    result.append(_skipped("1006", f"Field '{unknown[0]}' not found"))
                    continue
                if not _EMAIL.match(email):
                    result.append(_skipped("1003", f"Invalid email address: '{email}'"))
                    continue
                lead_id = self.data.by_email.get(email)
                if lead_id is None and action == "updateOnly":
                    result.append(_skipped("1004", "Lead not found"))
                    continue
                if lead_id is not None and action == "createOnly":
                    result.append(_skipped("1005", "Lead already exists"))
                    continue
                status = "updated" if lead_id is not None else "created"
                if lead_id is None:
                    lead_id = next(self.data._ids)
                    self.data.leads[lead_id] = {"id": lead_id}
                    self.data.by_email[email] = lead_id
                self.data.leads[lead_id].update({**record, "email": email})
                result.append({"id": lead_id, "status": status})
        return ok(result)

    def _get_leads(self, request: Request) -> Response:
        if request.query.get("filterType") != "email":
            return envelope_error("1003", "filterType email only")
        values = [v.strip().lower() for v in request.query.get("filterValues", "").split(",") if v.strip()]
        if len(values) > BATCH_LIMIT:
            return envelope_error("1003", f"at most {BATCH_LIMIT} filterValues")
        found = [self.data.leads[self.data.by_email[v]] for v in values if v in self.data.by_email]
        return ok([{"id": lead["id"], "email": lead["email"]} for lead in found])

    # -- static lists --------------------------------------------------------------------------
    def _lists(self, request: Request) -> Response:
        name = request.query.get("name")
        found = [v for v in self.data.lists.values() if name is None or v["name"] == name]
        return ok(found)

    def _membership(self, request: Request, add: bool) -> Response:
        list_id = int(request.params["list"])
        if list_id not in self.data.lists:
            return envelope_error("1013", "Static list not found")
        ids = [int(item["id"]) for item in (request.json() or {}).get("input") or []]
        if not ids or len(ids) > BATCH_LIMIT:
            return envelope_error("1003", f"input must hold 1 to {BATCH_LIMIT} ids")
        result = []
        with self.data.lock:
            members = self.data.members[list_id]
            for lead_id in ids:
                if lead_id not in self.data.leads:
                    result.append({"id": lead_id, **_skipped("1004", "Lead not found")})
                elif add:
                    members.add(lead_id)
                    result.append({"id": lead_id, "status": "added"})
                elif lead_id in members:
                    members.discard(lead_id)
                    result.append({"id": lead_id, "status": "removed"})
                else:
                    result.append({"id": lead_id, **_skipped("1004", "Lead not in list")})
        return ok(result)

    def _add(self, request: Request) -> Response:
        return self._membership(request, add=True)

    def _remove(self, request: Request) -> Response:
        return self._membership(request, add=False)


def _skipped(code: str, message: str) -> dict[str, Any]:
    return {"status": "skipped", "reasons": [{"code": code, "message": message}]}
