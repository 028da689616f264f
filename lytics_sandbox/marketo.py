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
  1004 when the lead is not there), ``GET /rest/v1/lists/{listId}/leads.json``;
* Bulk Extract, https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/bulk-extract/bulk-lead-extract
  and ``.../bulk-extract/bulk-activity-extract`` (their OpenAPI description in the
  ``api-evangelist/marketo`` repository, ``openapi/marketo-bulk-export-leads-api-openapi.yml``):
  ``POST /bulk/v1/{leads|activities}/export/create.json`` (``format`` CSV, lead ``fields``, a
  ``filter`` of ``createdAt`` or ``updatedAt`` for leads, ``createdAt`` and ``activityTypeIds`` for
  activities, ``startAt`` / ``endAt`` ISO 8601 at most 31 days apart; 1003 otherwise, 1035 where the
  subscription lacks the ``updatedAt`` filter), ``{exportId}/enqueue.json`` (only a ``Created``
  job; 1029 when the day's export quota, 500 MB by default, is spent or 10 jobs are queued),
  ``{exportId}/status.json`` (``Created``, ``Queued``, ``Processing``, ``Completed`` with
  ``fileSize`` and ``numberOfRecords``), ``{exportId}/file.json`` (the CSV of a completed job; the
  activity columns ``marketoGUID``, ``leadId``, ``activityDate``, ``activityTypeId``, ``campaignId``,
  ``primaryAttributeValueId``, ``primaryAttributeValue``, ``attributes`` as JSON). The stand-in
  takes a range as ``[startAt, endAt)``.

The 20-second window (:attr:`MarketoSandbox.window`), the daily quota and the daily export quota
(:attr:`MarketoSandbox.export_quota`, bytes) are settable, so a benchmark can run the same limit
faster.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer, json_response, most_in_window

EXPORT_QUOTA = 500 * 1024 * 1024
QUEUE_LIMIT = 10
LONGEST_RANGE = timedelta(days=31)
ACTIVITY_COLUMNS = (
    "marketoGUID", "leadId", "activityDate", "activityTypeId", "campaignId", "primaryAttributeValueId",
    "primaryAttributeValue", "attributes",
)  # fmt: skip

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
    activities: list[dict[str, Any]] = field(default_factory=list)

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

    def put_lead(self, email: str, created: str, updated: str | None = None, **fields: Any) -> int:
        """Create or change a lead by email (``createdAt`` / ``updatedAt`` ISO 8601); its id."""
        with self.lock:
            email = email.lower()
            lead_id = self.by_email.get(email)
            if lead_id is None:
                lead_id = next(self._ids)
                self.by_email[email] = lead_id
                self.leads[lead_id] = {"id": lead_id, "createdAt": created}
            self.leads[lead_id].update({**fields, "email": email, "updatedAt": updated or created})
            return lead_id

    def add_activity(self, lead_id: int, type_id: int, at: str, **attributes: Any) -> str:
        """Record an activity of a lead at ``at`` (ISO 8601); its ``marketoGUID``."""
        with self.lock:
            guid = str(uuid.uuid4())
            self.activities.append(
                {
                    "marketoGUID": guid, "leadId": lead_id, "activityDate": at, "activityTypeId": type_id,
                    "campaignId": attributes.pop("campaignId", ""), "primaryAttributeValueId": "",
                    "primaryAttributeValue": attributes.pop("primary", ""),
                    "attributes": json.dumps(attributes) if attributes else "",
                }
            )  # fmt: skip
            return guid

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
        self.export_quota = EXPORT_QUOTA
        self.exported = 0
        self.updated_at_filter = True
        self.polls_to_complete = 2
        self.exports: dict[str, dict[str, Any]] = {}
        self.add_route("GET", r"/identity/oauth/token", self._token, "token")
        self.add_route("POST", r"/identity/oauth/token", self._token, "token")
        self.add_route("POST", r"/rest/v1/leads\.json", self._sync_leads, "leads")
        self.add_route("GET", r"/rest/v1/leads\.json", self._get_leads, "get_leads")
        self.add_route("GET", r"/rest/v1/lists\.json", self._lists, "lists")
        self.add_route("POST", r"/rest/v1/lists/(?P<list>\d+)/leads\.json", self._add, "list_add")
        self.add_route("DELETE", r"/rest/v1/lists/(?P<list>\d+)/leads\.json", self._remove, "list_remove")
        kinds = r"/bulk/v1/(?P<kind>leads|activities)/export"
        self.add_route("POST", kinds + r"/create\.json", self._create_export, "export_create")
        self.add_route(
            "POST", kinds + r"/(?P<id>[\w-]+)/enqueue\.json", self._enqueue_export, "export_enqueue"
        )
        self.add_route("GET", kinds + r"/(?P<id>[\w-]+)/status\.json", self._export_status, "export_status")
        self.add_route("GET", kinds + r"/(?P<id>[\w-]+)/file\.json", self._export_file, "export_file")

    def reset(self) -> None:
        self.data = MarketoData()
        self.client_id, self.client_secret = "sandbox-client", "sandbox-secret"
        self.window, self.calls_per_window, self.daily_quota = WINDOW_SECONDS, CALLS_PER_WINDOW, 50_000
        self.tokens.clear()
        self.expired.clear()
        self.recent.clear()
        self.history.clear()
        self.counted = self.rate_limited = 0
        self.export_quota, self.exported, self.updated_at_filter = EXPORT_QUOTA, 0, True
        self.polls_to_complete = 2
        self.exports.clear()
        self.faults.clear()
        self.reset_counters()

    def peak(self, window: float | None = None) -> int:
        """The most calls served within any ``window`` seconds (default the rate-limit window)."""
        return most_in_window(self.history, self.window if window is None else window)

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

    # -- bulk extract --------------------------------------------------------------------------
    def _create_export(self, request: Request) -> Response:
        kind, body = request.params["kind"], request.json() or {}
        where = dict(body.get("filter") or {})
        allowed = {"createdAt", "updatedAt"} if kind == "leads" else {"createdAt"}
        ranges = [name for name in where if name in allowed]
        if body.get("format", "CSV") != "CSV" or len(ranges) != 1:
            return envelope_error("1003", f"filter must hold one of {', '.join(sorted(allowed))}")
        if ranges[0] == "updatedAt" and not self.updated_at_filter:
            return envelope_error("1035", "Unsupported filter type for target subscription: updatedAt")
        if kind == "leads" and not body.get("fields"):
            return envelope_error("1003", "fields is required")
        try:
            start, end = (_moment(where[ranges[0]][edge]) for edge in ("startAt", "endAt"))
        except (KeyError, TypeError, ValueError):
            return envelope_error("1003", f"{ranges[0]} needs startAt and endAt in ISO 8601")
        if not start < end <= start + LONGEST_RANGE:
            return envelope_error("1003", "the date range must be at most 31 days")
        export_id = str(uuid.uuid4())
        job = {"exportId": export_id, "format": "CSV", "status": "Created", "createdAt": _now()}
        self.exports[export_id] = {
            **job, "kind": kind, "field": ranges[0], "range": (start, end), "polls": 0,
            "fields": list(body.get("fields") or ()), "types": set(where.get("activityTypeIds") or ()),
        }  # fmt: skip
        return ok([job])

    def _job(self, request: Request) -> dict[str, Any] | None:
        job = self.exports.get(request.params["id"])
        return job if job is not None and job["kind"] == request.params["kind"] else None

    def _shown(self, job: dict[str, Any]) -> Response:
        public = ("exportId", "format", "status", "createdAt", "queuedAt", "fileSize", "numberOfRecords")
        return ok([{key: job[key] for key in public if key in job}])

    def _enqueue_export(self, request: Request) -> Response:
        job = self._job(request)
        if job is None:
            return envelope_error("1003", "Export job not found")
        if job["status"] != "Created":
            return envelope_error("1003", f"Export job is {job['status']}, not Created")
        if self.exported >= self.export_quota:
            return envelope_error(
                "1029", f"Export daily quota {self.export_quota // (1024 * 1024)} MB exceeded"
            )
        if sum(1 for j in self.exports.values() if j["status"] in ("Queued", "Processing")) >= QUEUE_LIMIT:
            return envelope_error("1029", f"Too many jobs ({QUEUE_LIMIT}) in queue")
        job.update(status="Queued", queuedAt=_now())
        return self._shown(job)

    def _export_status(self, request: Request) -> Response:
        job = self._job(request)
        if job is None:
            return envelope_error("1003", "Export job not found")
        if job["status"] in ("Queued", "Processing"):
            job["polls"] += 1
            if job["polls"] >= self.polls_to_complete:
                job["csv"], job["numberOfRecords"] = self._extract(job)
                job.update(status="Completed", fileSize=len(job["csv"]))
                self.exported += len(job["csv"])
            else:
                job["status"] = "Processing"
        return self._shown(job)

    def _export_file(self, request: Request) -> Response:
        job = self._job(request)
        if job is None or job["status"] != "Completed":
            return envelope_error("1003", "Export job not completed")
        return Response(body=job["csv"], content_type="text/csv")

    def _extract(self, job: dict[str, Any]) -> tuple[bytes, int]:
        """The CSV of what the job's range selects, and its number of rows."""
        start, end = job["range"]
        with self.data.lock:
            if job["kind"] == "leads":
                columns = job["fields"]
                rows = [
                    {name: lead.get(name, "") for name in columns}
                    for lead in self.data.leads.values()
                    if lead.get(job["field"]) and start <= _moment(lead[job["field"]]) < end
                ]
            else:
                columns = list(ACTIVITY_COLUMNS)
                rows = [
                    dict(item)
                    for item in self.data.activities
                    if start <= _moment(item["activityDate"]) < end
                    and (not job["types"] or item["activityTypeId"] in job["types"])
                ]
        out = io.StringIO()
        writer = csv.DictWriter(out, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue().encode(), len(rows)


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _skipped(code: str, message: str) -> dict[str, Any]:
    return {"status": "skipped", "reasons": [{"code": code, "message": message}]}
