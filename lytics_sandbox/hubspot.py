"""Loopback stand-in for the HubSpot CRM API: contacts, lists, email events and its rate limits.

Contract followed (HubSpot's published API reference; no vendor code or spec is copied):

* contacts v3, https://developers.hubspot.com/docs/api-reference/crm-contacts-v3/guide :
  ``GET /crm/v3/objects/contacts`` (``limit`` at most 100, ``after`` cursor, ``properties``;
  answer ``results`` + ``paging.next.after``), ``POST /crm/v3/objects/contacts/batch/upsert`` and
  ``POST /crm/v3/objects/contacts/batch/read`` (at most 100 ``inputs``, ``idProperty``),
  ``POST /crm/v3/objects/contacts/search`` (``filterGroups``, ``sorts``, ``after``; at most 200 per
  page and 10,000 results per query: paging past them is a 400);
* lists v3, https://developers.hubspot.com/docs/api-reference/legacy/crm/lists/memberships/add-to-list :
  ``POST /crm/v3/lists``, ``GET /crm/v3/lists/object-type-id/{objectTypeId}/name/{listName}``,
  ``PUT /crm/v3/lists/{listId}/memberships/add`` and ``.../remove`` (a JSON array of record ids;
  the answer names the ids added (``recordsIdsAdded``, spelled as published), removed and
  missing; ids that do not exist or are already members are ignored),
  ``GET /crm/v3/lists/{listId}/memberships`` (``after`` paging);
* email events, https://legacydocs.hubspot.com/docs/methods/email/get_events :
  ``GET /email/public/v1/events`` (``startTimestamp``/``endTimestamp`` in ms, ``limit`` at most
  1000, ``offset`` cursor and ``hasMore``);
* account, ``GET /account-info/v3/details`` (the Test button's call);
* auth, https://developers.hubspot.com/docs/guides/apps/private-apps/overview :
  ``Authorization: Bearer <private app access token>``; anything else is 401
  ``{"status": "error", "category": "INVALID_AUTHENTICATION", ...}``;
* limits, https://developers.hubspot.com/docs/guides/apps/api-usage/usage-details : private apps get
  100 requests per rolling 10 seconds (190 on Professional / Enterprise) and a daily quota; every
  answer carries ``X-HubSpot-RateLimit-Max``, ``-Remaining``, ``-Interval-Milliseconds``,
  ``-Daily`` and ``-Daily-Remaining``; over the limit the answer is 429 with
  ``{"status": "error", "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING", ...}``.
  The interval is configurable (``interval``) so a benchmark can run the same budget faster.

Choices where the published contract is silent (documented, not claims about the real service):
an upsert batch holding an invalid email is refused whole with a 400 ``VALIDATION_ERROR`` whose
``errors[].context.id`` names the email; a membership call takes at most 100,000 ids.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer, json_response

BATCH_LIMIT = 100
PAGE_LIMIT = 100
SEARCH_PAGE_LIMIT = 200
SEARCH_RESULT_CAP = 10_000
MEMBERSHIP_LIMIT = 100_000
EVENTS_PAGE_LIMIT = 1000
CONTACT_OBJECT_TYPE = "0-1"
EMAIL_EVENT_TYPES = ("SENT", "DELIVERED", "OPEN", "CLICK", "BOUNCE", "UNSUBSCRIBED")


def _is_email(text: str) -> bool:
    local, at, domain = text.partition("@")
    return bool(at and local and "." in domain and " " not in text and not domain.endswith("."))


def error_body(message: str, category: str, **extra: Any) -> dict[str, Any]:
    """HubSpot's error envelope."""
    return {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }


@dataclass
class HubspotData:
    """What the stand-in holds; tests read and change it directly."""

    portal_id: int = 4242
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {"properties", "updatedAt"}
    lists: dict[str, dict[str, Any]] = field(default_factory=dict)
    memberships: dict[str, dict[str, int]] = field(default_factory=dict)  # list id -> record id -> ms
    events: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self._ids = itertools.count(1001)
        self._last_stamp = 0
        self.by_email = {str(c["properties"].get("email")).lower(): cid for cid, c in self.contacts.items()}

    def stamp(self) -> int:
        """The current time in ms, strictly increasing, so time-window reads are exact."""
        with self.lock:
            self._last_stamp = max(self._last_stamp + 1, int(time.time() * 1000))
            return self._last_stamp

    def upsert(self, email: str, properties: dict[str, Any]) -> tuple[str, bool]:
        """Create or update the contact with ``email``; return (id, created)."""
        with self.lock:
            email = email.lower()
            cid = self.by_email.get(email)
            new = cid is None
            if cid is None:
                cid = str(next(self._ids))
                self.contacts[cid] = {"properties": {"email": email}, "createdAt": self.stamp()}
                self.by_email[email] = cid
            contact = self.contacts[cid]
            contact["properties"].update({k: v for k, v in properties.items() if k != "email"})
            contact["updatedAt"] = self.stamp()
            return cid, new

    def add_list(self, name: str) -> dict[str, Any]:
        with self.lock:
            list_id = str(next(self._ids))
            self.lists[list_id] = {
                "listId": list_id,
                "name": name,
                "objectTypeId": CONTACT_OBJECT_TYPE,
                "processingType": "MANUAL",
            }
            self.memberships[list_id] = {}
            return self.lists[list_id]

    def list_by_name(self, name: str) -> dict[str, Any] | None:
        return next((lst for lst in self.lists.values() if lst["name"].lower() == name.lower()), None)

    def members(self, list_id: str) -> set[str]:
        """Emails of a list's members."""
        return {self.contacts[cid]["properties"]["email"] for cid in self.memberships.get(list_id, {})}

    def add_event(self, kind: str, email: str, created: int, **extra: Any) -> dict[str, Any]:
        event = {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{kind}{email}{created}{len(self.events)}")),
            "type": kind,
            "recipient": email,
            "created": created,
            "portalId": self.portal_id,
            **extra,
        }
        self.events.append(event)
        return event


class RateWindow:
    """At most ``limit`` requests in any ``interval`` seconds (HubSpot's TEN_SECONDLY_ROLLING)."""

    def __init__(self, limit: int, interval: float) -> None:
        self.limit = limit
        self.interval = interval
        self.seen: deque[float] = deque()
        self.lock = threading.Lock()
        self.refused = 0
        self.accepted = 0

    def take(self) -> int | None:
        """Count one request; None when it is over the limit, else the requests left."""
        with self.lock:
            now = time.monotonic()
            while self.seen and self.seen[0] <= now - self.interval:
                self.seen.popleft()
            if len(self.seen) >= self.limit:
                self.refused += 1
                return None
            self.seen.append(now)
            self.accepted += 1
            return self.limit - len(self.seen)


class HubspotSandbox(SandboxHTTPServer):
    """Serves the HubSpot API on 127.0.0.1 (``base_url`` once started).

    :param data: what it holds (default: empty).
    :param token: the private app access token it accepts.
    :param limit: requests per ``interval`` (None: no rate limit enforced).
    :param interval: the rolling window in seconds (10 as published).
    """

    def __init__(
        self,
        data: HubspotData | None = None,
        token: str = "pat-na1-sandbox-token",
        limit: int | None = None,
        interval: float = 10.0,
    ) -> None:
        super().__init__()
        self.data = data or HubspotData()
        self.token = token
        self.window = RateWindow(limit, interval) if limit else None
        self.daily = 500_000
        self.daily_used = 0
        r = self.add_route
        r("GET", r"/account-info/v3/details", self._account, "account")
        r("GET", r"/crm/v3/objects/contacts", self._contacts, "contacts_list")
        r("POST", r"/crm/v3/objects/contacts/batch/upsert", self._upsert, "contacts_upsert")
        r("POST", r"/crm/v3/objects/contacts/batch/read", self._read, "contacts_read")
        r("POST", r"/crm/v3/objects/contacts/search", self._search, "contacts_search")
        r("POST", r"/crm/v3/lists/?", self._create_list, "lists_create")
        r(
            "GET",
            r"/crm/v3/lists/object-type-id/(?P<ot>[^/]+)/name/(?P<name>[^/]+)",
            self._list_by_name,
            "list_by_name",
        )
        r("PUT", r"/crm/v3/lists/(?P<id>\d+)/memberships/add", self._members_add, "memberships_add")
        r("PUT", r"/crm/v3/lists/(?P<id>\d+)/memberships/remove", self._members_remove, "memberships_remove")
        r("GET", r"/crm/v3/lists/(?P<id>\d+)/memberships", self._members, "memberships")
        r("GET", r"/email/public/v1/events", self._events, "email_events")

    # -- connection for tests -------------------------------------------------------------------
    def connection(self, **extra: Any) -> dict[str, Any]:
        """An Airflow connection (JSON form) pointing at this stand-in."""
        return {"conn_type": "hubspot", "host": self.base_url, "password": self.token, "extra": extra}

    # -- server hooks ---------------------------------------------------------------------------
    def error_response(self, status: int, message: str, request: Request) -> Response:
        category = {404: "OBJECT_NOT_FOUND", 429: "RATE_LIMIT"}.get(status, "INTERNAL_ERROR")
        return json_response(error_body(message, category), status)

    def authenticate(self, request: Request) -> Response | None:
        if request.header("Authorization") != f"Bearer {self.token}":
            body = error_body(
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
                "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                "INVALID_AUTHENTICATION",
            )
            return json_response(body, 401)
        if self.window is None:
            return None
        left = self.window.take()
        if left is None:
            body = {
                "status": "error",
                "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT",
                "correlationId": str(uuid.uuid4()),
                "policyName": "TEN_SECONDLY_ROLLING",
            }
            return json_response(body, 429, self._limit_headers(0))
        request.params["_remaining"] = str(left)
        return None

    def _limit_headers(self, remaining: int) -> dict[str, str]:
        assert self.window is not None
        self.daily_used += 1
        return {
            "X-HubSpot-RateLimit-Max": str(self.window.limit),
            "X-HubSpot-RateLimit-Remaining": str(remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.window.interval * 1000)),
            "X-HubSpot-RateLimit-Daily": str(self.daily),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily - self.daily_used)),
        }

    def _ok(self, request: Request, payload: Any, status: int = 200) -> Response:
        headers = self._limit_headers(int(request.params["_remaining"])) if self.window else {}
        return json_response(payload, status, headers)

    def _bad(self, message: str, **extra: Any) -> Response:
        return json_response(error_body(message, "VALIDATION_ERROR", **extra), 400)

    # -- account --------------------------------------------------------------------------------
    def _account(self, request: Request) -> Response:
        return self._ok(
            request,
            {"portalId": self.data.portal_id, "accountType": "STANDARD", "timeZone": "US/Eastern",
             "companyCurrency": "USD", "uiDomain": "app.hubspot.com", "dataHostingLocation": "na1"},
        )  # fmt: skip

    # -- contacts -------------------------------------------------------------------------------
    def _contact_doc(self, cid: str, wanted: list[str] | None = None) -> dict[str, Any]:
        contact = self.data.contacts[cid]
        props = contact["properties"]
        shown = {k: props.get(k) for k in wanted}
        shown["email"] = props.get("email")
        shown.update(hs_object_id=cid, lastmodifieddate=str(contact["updatedAt"]))
        return {
            "id": cid,
            "properties": shown,
            "createdAt": str(contact["createdAt"]),
            "updatedAt": str(contact["updatedAt"]),
            "archived": False,
        }

    def _limit(self, request: Request, cap: int, default: int = 10) -> int | None:
        try:
            limit = int(request.query.get("limit", default))
        except ValueError:
            return None
        return limit if 1 <= limit <= cap else None

    def _contacts(self, request: Request) -> Response:
        limit = self._limit(request, PAGE_LIMIT)
        if limit is None:
            return self._bad(f"limit must be between 1 and {PAGE_LIMIT}")
        wanted = [p for p in (request.query.get("properties") or "").split(",") if p]
        ids = sorted(self.data.contacts, key=int)
        start = int(request.query.get("after") or 0)
        page = [cid for cid in ids if int(cid) > start][:limit]
        body: dict[str, Any] = {"results": [self._contact_doc(cid, wanted) for cid in page]}
        if page and int(page[-1]) < int(ids[-1]):
            body["paging"] = {"next": {"after": page[-1]}}
        return self._ok(request, body)

    def _inputs(self, request: Request) -> tuple[list[dict[str, Any]], Response | None]:
        body = request.json() or {}
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            return [], self._bad("inputs must be a non-empty array")
        if len(inputs) > BATCH_LIMIT:
            return [], self._bad(f"Batch input cannot exceed {BATCH_LIMIT} inputs, got {len(inputs)}")
        return inputs, None

    def _upsert(self, request: Request) -> Response:
        inputs, problem = self._inputs(request)
        if problem:
            return problem
        errors = []
        for item in inputs:
            email = str(item.get("id") or "").strip()
            if item.get("idProperty") != "email":
                return self._bad("idProperty must be a unique property; this stand-in upserts by email")
            if not _is_email(email):
                errors.append(
                    {
                        "message": f"Property values were not valid: email {email!r} is not a valid email",
                        "code": "INVALID_EMAIL",
                        "context": {"id": [email]},
                    }
                )
        if errors:
            return json_response(
                error_body("Property values were not valid", "VALIDATION_ERROR", errors=errors), 400
            )
        results = []
        with self.data.lock:
            for item in inputs:
                cid, new = self.data.upsert(str(item["id"]), dict(item.get("properties") or {}))
                results.append({**self._contact_doc(cid, list(item.get("properties") or {})), "new": new})
        return self._ok(request, {"status": "COMPLETE", "results": results})

    def _read(self, request: Request) -> Response:
        inputs, problem = self._inputs(request)
        if problem:
            return problem
        body = request.json()
        by = body.get("idProperty") or "hs_object_id"
        wanted = list(body.get("properties") or [])
        found, missing = [], []
        for item in inputs:
            key = str(item.get("id") or "")
            cid = self.data.by_email.get(key.lower()) if by == "email" else key
            if cid in self.data.contacts:
                found.append(self._contact_doc(cid, wanted))
            else:
                missing.append(key)
        payload: dict[str, Any] = {"status": "COMPLETE", "results": found}
        if not missing:
            return self._ok(request, payload)
        payload.update(
            numErrors=1,
            errors=[
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": "Could not get some CONTACT objects, they may be deleted or not exist.",
                    "context": {"ids": missing},
                }
            ],
        )
        return self._ok(request, payload, 207)

    def _search(self, request: Request) -> Response:
        body = request.json() or {}
        limit = int(body.get("limit") or 10)
        if not 1 <= limit <= SEARCH_PAGE_LIMIT:
            return self._bad(f"limit must be between 1 and {SEARCH_PAGE_LIMIT}")
        after = int(body.get("after") or 0)
        if after + limit > SEARCH_RESULT_CAP:
            return self._bad(f"The search endpoints return at most {SEARCH_RESULT_CAP} results per query")
        low, high = 0, 1 << 62
        for group in body.get("filterGroups") or []:
            for rule in group.get("filters") or []:
                if rule.get("propertyName") != "lastmodifieddate":
                    return self._bad("this stand-in filters on lastmodifieddate only")
                value = int(rule["value"])
                if rule["operator"] == "GTE":
                    low = max(low, value)
                elif rule["operator"] == "GT":
                    low = max(low, value + 1)
                elif rule["operator"] == "LT":
                    high = min(high, value)
        wanted = list(body.get("properties") or [])
        with self.data.lock:
            hits = sorted(
                (c["updatedAt"], cid) for cid, c in self.data.contacts.items() if low <= c["updatedAt"] < high
            )
        page = hits[after : after + limit]
        payload: dict[str, Any] = {
            "total": len(hits),
            "results": [self._contact_doc(cid, wanted) for _, cid in page],
        }
        if after + limit < len(hits):
            payload["paging"] = {"next": {"after": str(after + limit)}}
        return self._ok(request, payload)

    # -- lists ----------------------------------------------------------------------------------
    def _create_list(self, request: Request) -> Response:
        body = request.json() or {}
        name = str(body.get("name") or "").strip()
        if not name or body.get("objectTypeId") != CONTACT_OBJECT_TYPE:
            return self._bad("name and objectTypeId 0-1 are required")
        if body.get("processingType") not in ("MANUAL", "SNAPSHOT", "DYNAMIC"):
            return self._bad("processingType must be MANUAL, SNAPSHOT or DYNAMIC")
        if self.data.list_by_name(name):
            return self._bad(f"A list named {name!r} already exists", subCategory="ILS_LIST_NAME_TAKEN")
        listing = self.data.add_list(name)
        listing["processingType"] = body["processingType"]
        return self._ok(request, {"list": listing})

    def _list_by_name(self, request: Request) -> Response:
        found = self.data.list_by_name(unquote(request.params["name"]))
        if found is None or request.params["ot"] != CONTACT_OBJECT_TYPE:
            return json_response(error_body("List does not exist", "OBJECT_NOT_FOUND"), 404)
        return self._ok(request, {"list": found})

    def _member_ids(self, request: Request) -> tuple[str, list[str], Response | None]:
        list_id = request.params["id"]
        listing = self.data.lists.get(list_id)
        if listing is None:
            return (
                list_id,
                [],
                json_response(error_body(f"List {list_id} does not exist", "OBJECT_NOT_FOUND"), 404),
            )
        if listing["processingType"] == "DYNAMIC":
            return list_id, [], self._bad("Memberships of a DYNAMIC list cannot be changed by hand")
        ids = request.json()
        if not isinstance(ids, list) or len(ids) > MEMBERSHIP_LIMIT:
            return (
                list_id,
                [],
                self._bad(f"the body must be an array of at most {MEMBERSHIP_LIMIT} record ids"),
            )
        return list_id, [str(i) for i in ids], None

    def _members_add(self, request: Request) -> Response:
        list_id, ids, problem = self._member_ids(request)
        if problem:
            return problem
        added, missing = [], []
        with self.data.lock:
            members = self.data.memberships[list_id]
            for cid in ids:
                if cid not in self.data.contacts:
                    missing.append(cid)
                elif cid not in members:
                    members[cid] = self.data.stamp()
                    added.append(cid)
        return self._ok(
            request, {"recordsIdsAdded": added, "recordIdsRemoved": [], "recordIdsMissing": missing}
        )

    def _members_remove(self, request: Request) -> Response:
        list_id, ids, problem = self._member_ids(request)
        if problem:
            return problem
        removed, missing = [], []
        with self.data.lock:
            members = self.data.memberships[list_id]
            for cid in ids:
                if members.pop(cid, None) is not None:
                    removed.append(cid)
                elif cid not in self.data.contacts:
                    missing.append(cid)
        return self._ok(
            request, {"recordsIdsAdded": [], "recordIdsRemoved": removed, "recordIdsMissing": missing}
        )

    def _members(self, request: Request) -> Response:
        list_id = request.params["id"]
        if list_id not in self.data.lists:
            return json_response(error_body(f"List {list_id} does not exist", "OBJECT_NOT_FOUND"), 404)
        limit = self._limit(request, 250, 100)
        if limit is None:
            return self._bad("limit must be between 1 and 250")
        ids = sorted(self.data.memberships[list_id], key=int)
        after = int(request.query.get("after") or 0)
        page = [cid for cid in ids if int(cid) > after][:limit]
        body: dict[str, Any] = {
            "results": [
                {"recordId": cid, "membershipTimestamp": str(self.data.memberships[list_id][cid])}
                for cid in page
            ]
        }
        if page and page[-1] != ids[-1]:
            body["paging"] = {"next": {"after": page[-1]}}
        return self._ok(request, body)

    # -- email events ---------------------------------------------------------------------------
    def _events(self, request: Request) -> Response:
        limit = self._limit(request, EVENTS_PAGE_LIMIT, 100)
        if limit is None:
            return self._bad(f"limit must be between 1 and {EVENTS_PAGE_LIMIT}")
        start = int(request.query.get("startTimestamp") or 0)
        end = int(request.query.get("endTimestamp") or (1 << 62))
        kind = request.query.get("eventType")
        hits = [
            e for e in self.data.events if start <= e["created"] < end and (kind is None or e["type"] == kind)
        ]
        hits.sort(key=lambda e: (-e["created"], e["id"]))  # newest first, as the API answers
        offset = int(request.query.get("offset") or 0)
        page = hits[offset : offset + limit]
        more = offset + limit < len(hits)
        return self._ok(request, {"hasMore": more, "offset": str(offset + len(page)), "events": page})
