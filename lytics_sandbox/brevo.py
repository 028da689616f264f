"""Loopback stand-in for the Brevo API v3: contact lists, contact imports, the reads of Import
Users & Activity and its rate limits.

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
* a list's contacts, https://developers.brevo.com/reference/get-contacts-from-list :
  ``GET /v3/contacts/lists/{listId}/contacts`` with ``modifiedSince`` (contacts modified after a UTC
  date-time), ``limit`` (default 50, at most 500), ``offset`` and ``sort`` (order of creation,
  default ``desc``); ``{"contacts": [{"id", "email", "emailBlacklisted", "smsBlacklisted",
  "createdAt", "modifiedAt", "listIds", "attributes"}], "count"}``; 404 for an unknown list;
* per-contact email activity with a date window: the transactional email events,
  https://developers.brevo.com/reference/get-email-event-report : ``GET /v3/smtp/statistics/events``
  with ``startDate`` / ``endDate`` (YYYY-MM-DD, both or neither, at most 90 days) or ``days``
  (default 30), ``limit`` (default 2500, at most 5000), ``offset``, ``email``, ``event``, ``sort``
  (default ``desc``); ``{"events": [{"email", "date", "messageId", "event", "subject", "tag",
  "templateId", "reason", "ip", "link", "from"}]}``;
* per-contact SMS activity with a date window: the transactional SMS events,
  https://developers.brevo.com/reference/get-sms-events : ``GET /v3/transactionalSMS/statistics/events``
  with the same dates, ``limit`` (default 50, at most 100), ``offset``, ``phoneNumber``, ``event``,
  ``sort``; ``{"events": [{"phoneNumber", "date", "messageId", "event", "reason", "reply", "tag"}]}``;
  a parameter out of range is 400 ``{"code": "invalid_parameter", "message"}``;
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
from datetime import UTC, date, datetime, timedelta
from typing import Any

from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer, json_response, most_in_window

REMOVE_LIMIT = 150
IMPORT_BODY_LIMIT = 10 * 1024 * 1024
CALLS_PER_WINDOW = 10
WINDOW_SECONDS = 1.0
CONTACTS_LIMIT = 500
EVENT_LIMITS = {"email": (2500, 5000), "sms": (50, 100)}
EVENT_RANGE_DAYS = 90


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def error(code: str, message: str, status: int) -> Response:
    return json_response({"code": code, "message": message}, status)


@dataclass
class BrevoData:
    """Contacts by email, lists and their members; tests read and change it directly."""

    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    lists: dict[int, dict[str, Any]] = field(default_factory=dict)
    attributes: set[str] = field(default_factory=lambda: {"FIRSTNAME", "LASTNAME", "SMS"})
    imports: list[dict[str, Any]] = field(default_factory=list)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"email": [], "sms": []})
    """Transactional events by kind (``email``, ``sms``), each with its time in ``at`` (epoch ms)."""

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self._ids = itertools.count(2)
        self._contact_ids = itertools.count(1)

    def upsert(
        self, email: str, list_ids: set[int] | None = None, at: int | None = None, **attributes: Any
    ) -> dict[str, Any]:
        """Create or change a contact (its ``modifiedAt`` becomes ``at``, default now)."""
        moment = now_ms() if at is None else at
        with self.lock:
            contact = self.contacts.get(email)
            if contact is None:
                contact = self.contacts[email] = {
                    "id": next(self._contact_ids), "email": email, "attributes": {}, "listIds": set(),
                    "createdAt": moment,
                }  # fmt: skip
            contact["attributes"].update(attributes)
            contact["listIds"].update(list_ids or ())
            contact["modifiedAt"] = moment
            return contact

    def add_event(self, kind: str, at: int, **fields: Any) -> None:
        """A transactional ``email`` or ``sms`` event at ``at`` (epoch ms) with its fields."""
        with self.lock:
            self.events[kind].append({"at": at, **fields})

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
        self.add_route(
            "GET", r"/v3/contacts/lists/(?P<list>\d+)/contacts", self._list_contacts, "list_contacts"
        )
        self.add_route("GET", r"/v3/smtp/statistics/events", self._email_events, "email_events")
        self.add_route("GET", r"/v3/transactionalSMS/statistics/events", self._sms_events, "sms_events")

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
        return most_in_window(self.history, self.window if window is None else window)

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
                attributes = {
                    k: v for k, v in (row.get("attributes") or {}).items() if k in self.data.attributes
                }
                if email in self.data.contacts and not update:
                    continue
                self.data.upsert(email, set(list_ids), **attributes)
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

    def _list_contacts(self, request: Request) -> Response:
        list_id = int(request.params["list"])
        if list_id not in self.data.lists:
            return error("document_not_found", "List ID does not exist", 404)
        limit, offset = int(request.query.get("limit", "50")), int(request.query.get("offset", "0"))
        if not 0 <= limit <= CONTACTS_LIMIT:
            return error("invalid_parameter", f"limit must be between 0 and {CONTACTS_LIMIT}", 400)
        since = request.query.get("modifiedSince")
        try:
            after = parse_ms(since) if since else None
        except ValueError:
            return error("invalid_parameter", "modifiedSince is not a valid date-time", 400)
        with self.data.lock:
            found = [
                c for c in self.data.contacts.values()
                if list_id in c["listIds"] and (after is None or c["modifiedAt"] > after)
            ]  # fmt: skip
        found.sort(
            key=lambda c: (c["createdAt"], c["id"]), reverse=request.query.get("sort", "desc") != "asc"
        )
        page = [
            {
                "id": c["id"], "email": c["email"], "emailBlacklisted": False, "smsBlacklisted": False,
                "createdAt": iso(c["createdAt"]), "modifiedAt": iso(c["modifiedAt"]),
                "listIds": sorted(c["listIds"]), "attributes": dict(c["attributes"]),
            }
            for c in found[offset : offset + limit]
        ]  # fmt: skip
        return json_response({"contacts": page, "count": len(found)})

    def _email_events(self, request: Request) -> Response:
        return self._events(request, "email", "email")

    def _sms_events(self, request: Request) -> Response:
        return self._events(request, "sms", "phoneNumber")

    def _events(self, request: Request, kind: str, who: str) -> Response:
        default, most = EVENT_LIMITS[kind]
        limit, offset = int(request.query.get("limit", str(default))), int(request.query.get("offset", "0"))
        if not 0 <= limit <= most:
            return error("invalid_parameter", f"limit must be between 0 and {most}", 400)
        start, end = request.query.get("startDate"), request.query.get("endDate")
        if bool(start) != bool(end):
            return error("invalid_parameter", "startDate and endDate are both required when one is used", 400)
        try:
            if start and end:
                first, last = date.fromisoformat(start), date.fromisoformat(end)
            else:
                last = datetime.fromtimestamp(now_ms() / 1000, UTC).date()
                first = last - timedelta(days=int(request.query.get("days", "30")) - 1)
        except ValueError:
            return error("invalid_parameter", "dates must be YYYY-MM-DD", 400)
        if last < first or (last - first).days >= EVENT_RANGE_DAYS:
            return error("invalid_parameter", f"the date range must be 1 to {EVENT_RANGE_DAYS} days", 400)
        wanted = {key: request.query.get(key) for key in (who, "event") if request.query.get(key)}
        with self.data.lock:
            found = [
                e for e in self.data.events[kind]
                if first <= datetime.fromtimestamp(e["at"] / 1000, UTC).date() <= last
                and all(str(e.get(k)) == v for k, v in wanted.items())
            ]  # fmt: skip
        found.sort(key=lambda e: e["at"], reverse=request.query.get("sort", "desc") != "asc")
        page = [
            {"date": iso(e["at"]), **{k: v for k, v in e.items() if k != "at"}}
            for e in found[offset : offset + limit]
        ]
        return json_response({"events": page})


def parse_ms(moment: str) -> int:
    """Epoch milliseconds of an ISO date-time (UTC when it has no offset)."""
    parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return int((parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp() * 1000)
