"""Loopback stand-in for the Klaviyo API: bulk profile imports, lists, profiles and events.

Contract followed (Klaviyo's API reference, https://developers.klaviyo.com/en/reference/api_overview,
and its vendor-owned OpenAPI document, https://github.com/klaviyo/openapi (``openapi/stable.json``);
no vendor code or spec is copied):

* auth: ``Authorization: Klaviyo-API-Key <private key>``; a ``revision`` header is required on
  every call; bodies are JSON:API (``application/vnd.api+json``);
* ``POST /api/profile-bulk-import-jobs`` (Bulk Import Profiles): at most 10,000 profiles and 5 MB
  per job, an optional ``relationships.lists`` (one list); 202 with the job
  (``status`` ``queued`` -> ``processing`` -> ``complete``, ``total_count``, ``completed_count``,
  ``failed_count``); ``GET /api/profile-bulk-import-jobs/{id}`` and
  ``GET /api/profile-bulk-import-jobs/{id}/import-errors`` (``original_payload`` of each refused
  profile). An import upserts by email and adds the profiles to the list; it never changes consent;
* ``GET /api/lists`` (``filter=equals(name,"...")``), ``POST /api/lists``, and
  ``POST`` / ``DELETE /api/lists/{id}/relationships/profiles`` (at most 1,000 profiles, 204);
  removing a profile from a list does not unsubscribe it;
* ``GET /api/profiles`` (``page[size]`` at most 100, ``page[cursor]``, ``links.next``;
  ``filter=any(email,[...])`` with at most 100 values, ``greater-or-equal(updated,...)`` /
  ``less-than(updated,...)``, ``sort=updated``) and ``GET /api/events`` (200 a page,
  ``greater-or-equal(datetime,...)`` / ``less-than(datetime,...)``, ``sort=datetime``,
  ``include=metric``);
* errors: ``{"errors": [{"id", "status", "code", "title", "detail", "source": {"pointer"}}]}``;
  rate limits, https://developers.klaviyo.com/en/docs/rate_limits_and_error_handling : per
  endpoint, a burst (per second) and a steady (per minute) limit (tier M: 10/s and 150/m; L: 75/s
  and 700/m); over it, 429 ``throttled`` with ``Retry-After``.

Choices where the contract is silent (not claims about the real service): a job moves on one
status per ``GET`` of it (``polls_to_complete`` polls to ``complete``); a profile without a valid
email is an import error.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer, most_in_window

JOB_LIMIT = 10_000
JOB_BYTES = 5 * 1024 * 1024
RELATIONSHIP_LIMIT = 1000
PROFILE_PAGE = 100
EVENT_PAGE = 200
ANY_LIMIT = 100
TIERS = {"M": (10, 150), "L": (75, 700), "XL": (350, 3500)}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_FILTER = re.compile(r"(equals|any|greater-or-equal|greater-than|less-than)\((\w+),(.+?)\)(?:,|$)")


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def jsonapi_error(status: int, code: str, title: str, detail: str, pointer: str = "/data/") -> Response:
    body = {
        "errors": [
            {
                "id": str(uuid.uuid4()),
                "status": status,
                "code": code,
                "title": title,
                "detail": detail,
                "source": {"pointer": pointer},
            }
        ]
    }
    return Response(status, json.dumps(body).encode(), "application/vnd.api+json")


def api_response(payload: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(payload).encode(), "application/vnd.api+json")


@dataclass
class KlaviyoData:
    """What the stand-in holds; tests read and change it directly."""

    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> attributes + updated_ms
    lists: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)  # list id -> profile ids
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, str] = field(default_factory=dict)  # id -> name

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.by_email: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._last = 0

    def stamp(self) -> int:
        with self.lock:
            self._last = max(self._last + 1, int(time.time() * 1000))
            return self._last

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    def upsert(self, attributes: dict[str, Any]) -> str:
        with self.lock:
            email = str(attributes["email"]).strip().lower()
            pid = self.by_email.get(email)
            if pid is None:
                pid = self.new_id("01P")
                self.profiles[pid] = {"email": email, "properties": {}}
                self.by_email[email] = pid
            profile = self.profiles[pid]
            for key, value in attributes.items():
                if key == "properties":
                    profile["properties"].update(value or {})
                elif key != "email":
                    profile[key] = value
            profile["updated_ms"] = self.stamp()
            return pid

    def add_list(self, name: str) -> dict[str, Any]:
        with self.lock:
            list_id = self.new_id("L")
            self.lists[list_id] = {"name": name, "created": iso(self.stamp())}
            self.members[list_id] = set()
            return {"id": list_id, **self.lists[list_id]}

    def list_by_name(self, name: str) -> str | None:
        return next((lid for lid, lst in self.lists.items() if lst["name"] == name), None)

    def list_emails(self, list_id: str) -> set[str]:
        return {self.profiles[pid]["email"] for pid in self.members.get(list_id, set())}

    def add_event(self, metric: str, email: str, ms: int, **properties: Any) -> dict[str, Any]:
        with self.lock:
            metric_id = next((k for k, v in self.metrics.items() if v == metric), None)
            if metric_id is None:
                metric_id = self.new_id("M")
                self.metrics[metric_id] = metric
            pid = self.by_email.get(email) or self.upsert({"email": email})
            event = {
                "id": self.new_id("E"),
                "metric": metric_id,
                "profile": pid,
                "ms": ms,
                "properties": properties,
            }
            self.events.append(event)
            return event


class TierLimits:
    """Burst (per second) and steady (per minute) limits of one endpoint tier."""

    def __init__(self, burst: int, steady: int, scale: float = 1.0) -> None:
        self.burst, self.steady, self.scale = burst, steady, scale
        self.seen: deque[float] = deque()
        self.lock = threading.Lock()
        self.refused = 0
        self.accepted = 0
        self.history: list[float] = []

    def peak(self, window: float) -> int:
        """Most calls accepted in any ``window`` seconds (unscaled)."""
        return most_in_window(self.history, window * self.scale)

    def take(self) -> float | None:
        """None when the call is allowed, else the seconds to wait (``Retry-After``)."""
        with self.lock:
            now = time.monotonic()
            minute, second = 60.0 * self.scale, 1.0 * self.scale
            while self.seen and self.seen[0] <= now - minute:
                self.seen.popleft()
            recent = sum(1 for t in self.seen if t > now - second)
            if recent >= self.burst:
                self.refused += 1
                return second
            if len(self.seen) >= self.steady:
                self.refused += 1
                return self.seen[0] + minute - now
            self.seen.append(now)
            self.history.append(now)
            self.accepted += 1
            return None


class KlaviyoSandbox(SandboxHTTPServer):
    """Serves the Klaviyo API on 127.0.0.1 (``base_url`` once started).

    :param data: what it holds (default: empty).
    :param api_key: the private key it accepts.
    :param enforce_limits: answer 429 over each tier's burst / steady limits.
    :param time_scale: shortens the limits' windows (a benchmark runs the same budget faster).
    :param polls_to_complete: status reads a bulk job takes to reach ``complete``.
    """

    def __init__(
        self,
        data: KlaviyoData | None = None,
        api_key: str = "pk_sandbox_key",
        enforce_limits: bool = False,
        time_scale: float = 1.0,
        polls_to_complete: int = 2,
    ) -> None:
        super().__init__()
        self.data = data or KlaviyoData()
        self.api_key = api_key
        self.enforce_limits = enforce_limits
        self.limits = {tier: TierLimits(b, s, time_scale) for tier, (b, s) in TIERS.items()}
        self.polls_to_complete = polls_to_complete
        self.revisions: set[str] = set()
        r = self.add_route
        r("POST", r"/api/profile-bulk-import-jobs/?", self._job_create, "jobs_create")
        r(
            "GET",
            r"/api/profile-bulk-import-jobs/(?P<id>[^/]+)/import-errors/?",
            self._job_errors,
            "job_errors",
        )
        r("GET", r"/api/profile-bulk-import-jobs/(?P<id>[^/]+)/?", self._job_get, "job_get")
        r("GET", r"/api/lists/?", self._lists, "lists")
        r("POST", r"/api/lists/?", self._list_create, "lists_create")
        r("POST", r"/api/lists/(?P<id>[^/]+)/relationships/profiles/?", self._rel_add, "list_add")
        r("DELETE", r"/api/lists/(?P<id>[^/]+)/relationships/profiles/?", self._rel_remove, "list_remove")
        r("GET", r"/api/profiles/?", self._profiles, "profiles")
        r("GET", r"/api/events/?", self._events, "events")

    def connection(self, **extra: Any) -> dict[str, Any]:
        """An Airflow connection (JSON form) pointing at this stand-in."""
        return {"conn_type": "klaviyo", "host": self.base_url, "password": self.api_key, "extra": extra}

    @property
    def refused(self) -> int:
        return sum(t.refused for t in self.limits.values())

    # -- server hooks ---------------------------------------------------------------------------
    def error_response(self, status: int, message: str, request: Request) -> Response:
        code = {404: "not_found", 429: "throttled", 405: "method_not_allowed"}.get(status, "error")
        return jsonapi_error(status, code, message, message)

    def authenticate(self, request: Request) -> Response | None:
        if request.header("Authorization") != f"Klaviyo-API-Key {self.api_key}":
            return jsonapi_error(
                401, "not_authenticated", "Authentication credentials were not provided.",
                "Missing or invalid private key.",
            )  # fmt: skip
        revision = request.header("revision")
        if not revision:
            return jsonapi_error(400, "invalid", "Invalid input.", "The revision header is required.", "/")
        self.revisions.add(revision)
        if not self.enforce_limits:
            return None
        tier = "L" if request.method == "GET" and request.route in ("profiles", "events") else "M"
        wait = self.limits[tier].take()
        if wait is None:
            return None
        response = jsonapi_error(
            429, "throttled", "Request was throttled.",
            f"Request was throttled. Expected available in {max(1, round(wait))} second.",
        )  # fmt: skip
        response.headers["Retry-After"] = str(max(1, round(wait)))
        return response

    def _next(self, request: Request, offset: int) -> str:
        query = {k: v for k, v in request.query.items() if k != "page[cursor]"}
        query["page[cursor]"] = str(offset)
        return f"{self.base_url}{request.path}?{urlencode(query)}"

    # -- bulk import jobs -----------------------------------------------------------------------
    def _job_doc(self, job_id: str) -> dict[str, Any]:
        job = self.data.jobs[job_id]
        attributes = {k: job[k] for k in ("status", "total_count", "completed_count", "failed_count")}
        attributes.update(created_at=job["created_at"], completed_at=job.get("completed_at"))
        return {"type": "profile-bulk-import-job", "id": job_id, "attributes": attributes}

    def _job_create(self, request: Request) -> Response:
        if len(request.body) > JOB_BYTES:
            return jsonapi_error(
                413, "payload_too_large", "Payload too large", "A job's payload is at most 5 MB."
            )
        doc = request.json() or {}
        data = doc.get("data") or {}
        if data.get("type") != "profile-bulk-import-job":
            return jsonapi_error(
                400, "invalid", "Invalid input.", "data.type must be profile-bulk-import-job"
            )
        profiles = ((data.get("attributes") or {}).get("profiles") or {}).get("data")
        if not isinstance(profiles, list) or not profiles:
            return jsonapi_error(400, "invalid", "Invalid input.", "profiles.data must be a non-empty array")
        if len(profiles) > JOB_LIMIT:
            detail = f"A job takes at most {JOB_LIMIT} profiles, got {len(profiles)}."
            return jsonapi_error(400, "invalid", "Invalid input.", detail, "/data/attributes/profiles/data")
        lists = (((data.get("relationships") or {}).get("lists") or {}).get("data")) or []
        for item in lists:
            if item.get("id") not in self.data.lists:
                return jsonapi_error(404, "not_found", "Not found.", f"List {item.get('id')} does not exist.")
        job_id = self.data.new_id("J")
        self.data.jobs[job_id] = {
            "status": "queued",
            "total_count": len(profiles),
            "completed_count": 0,
            "failed_count": 0,
            "created_at": iso(self.data.stamp()),
            "profiles": profiles,
            "lists": [item["id"] for item in lists],
            "errors": [],
            "polls": 0,
        }
        return api_response({"data": self._job_doc(job_id)}, 202)

    def _run_job(self, job: dict[str, Any]) -> None:
        with self.data.lock:
            for profile in job["profiles"]:
                attributes = dict(profile.get("attributes") or {})
                email = str(attributes.get("email") or "").strip()
                if not _EMAIL.match(email):
                    job["errors"].append(
                        {
                            "code": "invalid",
                            "title": "Invalid email address",
                            "detail": f"{email!r} is not a valid email",
                            "original_payload": attributes,
                        }
                    )
                    job["failed_count"] += 1
                    continue
                pid = self.data.upsert(attributes)
                for list_id in job["lists"]:
                    self.data.members[list_id].add(pid)
                job["completed_count"] += 1
            job["status"] = "complete"
            job["completed_at"] = iso(self.data.stamp())

    def _job_get(self, request: Request) -> Response:
        job = self.data.jobs.get(request.params["id"])
        if job is None:
            return jsonapi_error(404, "not_found", "Not found.", "No such job.")
        job["polls"] += 1
        if job["status"] == "queued":
            job["status"] = "processing"
        if job["status"] == "processing" and job["polls"] >= self.polls_to_complete:
            self._run_job(job)
        return api_response({"data": self._job_doc(request.params["id"])})

    def _job_errors(self, request: Request) -> Response:
        job = self.data.jobs.get(request.params["id"])
        if job is None:
            return jsonapi_error(404, "not_found", "Not found.", "No such job.")
        offset = int(request.query.get("page[cursor]") or 0)
        size = int(request.query.get("page[size]") or 20)
        page = job["errors"][offset : offset + size]
        data = [
            {"type": "import-error", "id": f"{request.params['id']}-{offset + i}", "attributes": e}
            for i, e in enumerate(page)
        ]
        following = self._next(request, offset + size) if offset + size < len(job["errors"]) else None
        return api_response({"data": data, "links": {"self": request.path, "next": following}})

    # -- lists ----------------------------------------------------------------------------------
    def _lists(self, request: Request) -> Response:
        wanted = None
        for op, name, value in _FILTER.findall(request.query.get("filter") or ""):
            if op == "equals" and name == "name":
                wanted = json.loads(value)
        found = [
            {"type": "list", "id": lid, "attributes": {"name": lst["name"], "created": lst["created"]}}
            for lid, lst in self.data.lists.items()
            if wanted is None or lst["name"] == wanted
        ]
        return api_response({"data": found[:10], "links": {"self": request.path, "next": None}})

    def _list_create(self, request: Request) -> Response:
        data = (request.json() or {}).get("data") or {}
        name = str((data.get("attributes") or {}).get("name") or "").strip()
        if data.get("type") != "list" or not name:
            return jsonapi_error(400, "invalid", "Invalid input.", "data.type list and a name are required")
        created = self.data.add_list(name)
        return api_response(
            {"data": {"type": "list", "id": created["id"], "attributes": {"name": name}}}, 201
        )

    def _relationship(self, request: Request) -> tuple[str, list[str], Response | None]:
        list_id = request.params["id"]
        if list_id not in self.data.lists:
            return (
                list_id,
                [],
                jsonapi_error(404, "not_found", "Not found.", f"List {list_id} does not exist."),
            )
        items = (request.json() or {}).get("data")
        if not isinstance(items, list) or not items or len(items) > RELATIONSHIP_LIMIT:
            return (
                list_id,
                [],
                jsonapi_error(
                    400, "invalid", "Invalid input.", f"data must hold 1 to {RELATIONSHIP_LIMIT} profiles"
                ),
            )
        ids = [str(i.get("id")) for i in items if i.get("type") == "profile"]
        unknown = [i for i in ids if i not in self.data.profiles]
        if unknown:
            return (
                list_id,
                [],
                jsonapi_error(404, "not_found", "Not found.", f"Profiles do not exist: {unknown[:5]}"),
            )
        return list_id, ids, None

    def _rel_add(self, request: Request) -> Response:
        list_id, ids, problem = self._relationship(request)
        if problem:
            return problem
        self.data.members[list_id].update(ids)
        return Response(204, b"", "application/vnd.api+json")

    def _rel_remove(self, request: Request) -> Response:
        list_id, ids, problem = self._relationship(request)
        if problem:
            return problem
        self.data.members[list_id].difference_update(ids)
        return Response(204, b"", "application/vnd.api+json")

    # -- profiles and events --------------------------------------------------------------------
    def _filters(self, request: Request) -> list[tuple[str, str, Any]]:
        found = []
        for op, name, value in _FILTER.findall(request.query.get("filter") or ""):
            if op == "any":
                found.append((op, name, json.loads(value)))
            else:
                found.append((op, name, value.strip('"')))
        return found

    @staticmethod
    def _ms(value: str) -> int:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)

    def _window(self, filters: list[tuple[str, str, Any]], name: str) -> tuple[int, int]:
        low, high = 0, 1 << 62
        for op, field_name, value in filters:
            if field_name != name:
                continue
            if op == "greater-or-equal":
                low = max(low, self._ms(value))
            elif op == "greater-than":
                low = max(low, self._ms(value) + 1)
            elif op == "less-than":
                high = min(high, self._ms(value))
        return low, high

    def _profiles(self, request: Request) -> Response:
        size = int(request.query.get("page[size]") or 20)
        if not 1 <= size <= PROFILE_PAGE:
            return jsonapi_error(
                400, "invalid", "Invalid input.", f"page[size] must be 1 to {PROFILE_PAGE}", "/"
            )
        filters = self._filters(request)
        with self.data.lock:
            rows = list(self.data.profiles.items())
        for op, name, value in filters:
            if op == "any" and name == "email":
                if len(value) > ANY_LIMIT:
                    return jsonapi_error(
                        400, "invalid", "Invalid input.", f"any() takes at most {ANY_LIMIT} values", "/"
                    )
                wanted = {str(v).lower() for v in value}
                rows = [(pid, p) for pid, p in rows if p["email"] in wanted]
        low, high = self._window(filters, "updated")
        rows = [(pid, p) for pid, p in rows if low <= p["updated_ms"] < high]
        rows.sort(key=lambda r: (r[1]["updated_ms"], r[0]))
        offset = int(request.query.get("page[cursor]") or 0)
        page = rows[offset : offset + size]
        data = [
            {
                "type": "profile",
                "id": pid,
                "attributes": {
                    **{k: v for k, v in p.items() if k != "updated_ms"},
                    "updated": iso(p["updated_ms"]),
                },
            }
            for pid, p in page
        ]
        following = self._next(request, offset + size) if offset + size < len(rows) else None
        return api_response({"data": data, "links": {"self": request.path, "next": following}})

    def _events(self, request: Request) -> Response:
        low, high = self._window(self._filters(request), "datetime")
        hits = sorted(
            (e for e in self.data.events if low <= e["ms"] < high), key=lambda e: (e["ms"], e["id"])
        )
        offset = int(request.query.get("page[cursor]") or 0)
        page = hits[offset : offset + EVENT_PAGE]
        data = [
            {
                "type": "event",
                "id": e["id"],
                "attributes": {
                    "timestamp": e["ms"] // 1000,
                    "datetime": iso(e["ms"]),
                    "event_properties": e["properties"],
                },
                "relationships": {
                    "profile": {"data": {"type": "profile", "id": e["profile"]}},
                    "metric": {"data": {"type": "metric", "id": e["metric"]}},
                },
            }
            for e in page
        ]
        body: dict[str, Any] = {"data": data, "links": {"self": request.path, "next": None}}
        if offset + EVENT_PAGE < len(hits):
            body["links"]["next"] = self._next(request, offset + EVENT_PAGE)
        include = request.query.get("include") or ""
        included: list[dict[str, Any]] = []
        if "metric" in include:
            used = sorted({e["metric"] for e in page})
            included += [
                {"type": "metric", "id": m, "attributes": {"name": self.data.metrics[m]}} for m in used
            ]
        if "profile" in include:
            people = sorted({e["profile"] for e in page})
            included += [
                {"type": "profile", "id": p, "attributes": {"email": self.data.profiles[p]["email"]}}
                for p in people
            ]
        if included:
            body["included"] = included
        return api_response(body)
