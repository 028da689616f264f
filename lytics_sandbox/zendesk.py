"""A Zendesk Support API stand-in (HTTPS: zenpy, under ``ZendeskHook``, builds ``https://`` URLs).

Contract (the vendor's published reference):

- users: https://developer.zendesk.com/api-reference/ticketing/users/users/
  (``POST /api/v2/users/create_or_update_many.json``: at most 100 users, matched by ``email``,
  answered with a ``job_status``; ``GET /api/v2/users/me.json``);
- job statuses: https://developer.zendesk.com/api-reference/ticketing/ticket-management/job_statuses/
  (``GET /api/v2/job_statuses/{id}.json``: ``queued`` then ``completed`` with one result per
  user: ``index``, ``id``, ``action``/``status`` or ``error``/``details``);
- incremental exports: https://developer.zendesk.com/api-reference/ticketing/ticket-management/incremental_exports/
  (``GET /api/v2/incremental/{users|tickets}/cursor.json`` with ``start_time`` first, then
  ``cursor``; ``after_cursor``, ``after_url``, ``end_of_stream``; ``per_page`` at most 1000;
  10 requests per minute);
- rate limits: https://developer.zendesk.com/api-reference/introduction/rate-limits/ (429 with
  ``Retry-After`` in seconds, per-minute budgets).

Auth is Basic ``{email}/token:{api token}``; a wrong one answers 401 ``{"error": "Couldn't
authenticate you"}``. Errors follow the documented envelope ``{"error", "description", "details"}``.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections import deque
from typing import Any
from urllib.parse import urlencode

from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer, json_response

MAX_MANY = 100
INCREMENTAL_PER_MINUTE = 10


class ZendeskSandbox(SandboxHTTPServer):
    """One Zendesk account: users (by email), tickets, job statuses and per-minute rate limits.

    :param email: the agent email of the API token.
    :param token: the API token accepted.
    :param per_minute: requests per minute over the whole API (``None``: no limit).
    :param incremental_per_minute: requests per minute to the incremental exports.
    :param window: the limits' window in seconds (60; shorter only to scale a benchmark down).
    """

    def __init__(
        self,
        email: str = "agent@example.com",
        token: str = "zd-sandbox-token",
        per_minute: int | None = None,
        incremental_per_minute: int | None = INCREMENTAL_PER_MINUTE,
        window: float = 60.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.email = email
        self.token = token
        self.per_minute = per_minute
        self.incremental_per_minute = incremental_per_minute
        self.window = window
        self.call_times: list[float] = []
        self.users: dict[str, dict[str, Any]] = {}
        self.tickets: list[dict[str, Any]] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.writes: list[int] = []
        self.throttled = 0
        self._calls: deque[float] = deque()
        self._incremental: deque[float] = deque()
        self._next_id = 1000
        self._state = threading.Lock()
        self.add_route("GET", r"/api/v2/users/me\.json", self._me, "me")
        self.add_route(
            "POST", r"/api/v2/users/create_or_update_many\.json", self._many, "create_or_update_many"
        )
        self.add_route("GET", r"/api/v2/job_statuses/(?P<id>[^/.]+)\.json", self._job, "job_status")
        self.add_route(
            "GET",
            r"/api/v2/incremental/(?P<kind>users|tickets)/cursor\.json",
            self._incremental_export,
            "incremental",
        )

    def connection(self, token: str | None = None) -> dict[str, Any]:
        """An Airflow ``zendesk`` connection for this stand-in (host ``127.0.0.1:{port}``)."""
        return {
            "conn_type": "zendesk",
            "host": f"{self.host}:{self.port}",
            "login": self.email,
            "password": token or self.token,
            "extra": {"use_token": True},
        }

    # -- data ------------------------------------------------------------------------------------
    def add_user(self, email: str, name: str, updated_at: int, **fields: Any) -> dict[str, Any]:
        """A user that exists in the account (for the import tests)."""
        with self._state:
            self._next_id += 1
            user = {
                "id": self._next_id,
                "email": email,
                "name": name,
                "updated_at": updated_at,
                "user_fields": {},
                **fields,
            }
            self.users[email.lower()] = user
            return user

    def add_ticket(self, subject: str, requester_id: int, updated_at: int, **fields: Any) -> dict[str, Any]:
        """A ticket (for the import tests)."""
        with self._state:
            self._next_id += 1
            ticket = {
                "id": self._next_id,
                "subject": subject,
                "requester_id": requester_id,
                "status": "open",
                "updated_at": updated_at,
                **fields,
            }
            self.tickets.append(ticket)
            return ticket

    def members_with(self, field: str, value: str) -> set[str]:
        """Emails of the users whose user field ``field`` equals ``value``."""
        return {e for e, u in self.users.items() if (u.get("user_fields") or {}).get(field) == value}

    # -- auth and limits -------------------------------------------------------------------------
    def authenticate(self, request: Request) -> Response | None:
        expected = base64.b64encode(f"{self.email}/token:{self.token}".encode()).decode()
        if request.header("Authorization") != f"Basic {expected}":
            return json_response({"error": "Couldn't authenticate you"}, status=401)
        now = time.monotonic()
        if self.per_minute is not None:
            wait = _take(self._calls, self.per_minute, now, self.window)
            if wait is not None:
                self.throttled += 1
                return _throttled(wait)
        if request.route == "incremental" and self.incremental_per_minute is not None:
            wait = _take(self._incremental, self.incremental_per_minute, now, self.window)
            if wait is not None:
                self.throttled += 1
                return _throttled(wait)
        self.call_times.append(now)
        return None

    # -- routes ----------------------------------------------------------------------------------
    def _me(self, request: Request) -> Response:
        return json_response({"user": {"id": 1, "email": self.email, "role": "admin"}})

    def _many(self, request: Request) -> Response:
        body = request.json() or {}
        users = body.get("users")
        if not isinstance(users, list) or not users:
            return _error(400, "InvalidValue", "users must be a non-empty array")
        if len(users) > MAX_MANY:
            return _error(400, "TooManyValues", f"create_or_update_many accepts at most {MAX_MANY} users")
        results = []
        with self._state:
            for index, user in enumerate(users):
                email = str(user.get("email") or "").strip().lower()
                if "@" not in email or email.startswith("@") or email.endswith("@"):
                    results.append(
                        {
                            "index": index,
                            "error": "EmailInvalid",
                            "details": f"Email: {email or '(blank)'} is not properly formatted",
                        }
                    )
                    continue
                existing = self.users.get(email)
                if existing is None:
                    self._next_id += 1
                    existing = {
                        "id": self._next_id,
                        "email": email,
                        "name": user.get("name") or email,
                        "user_fields": {},
                    }
                    self.users[email] = existing
                    action = "create"
                else:
                    action = "update"
                for key, value in user.items():
                    if key == "user_fields":
                        existing["user_fields"].update(value or {})
                    elif key != "email":
                        existing[key] = value
                existing["updated_at"] = int(time.time())
                results.append(
                    {
                        "index": index,
                        "id": existing["id"],
                        "email": email,
                        "action": action,
                        "status": "Created" if action == "create" else "Updated",
                        "success": True,
                    }
                )
            job_id = uuid.uuid4().hex
            self.jobs[job_id] = {"results": results, "polls": 0, "total": len(users)}
            self.writes.append(len(users))
        return json_response({"job_status": self._job_body(job_id, queued=True)})

    def _job_body(self, job_id: str, queued: bool = False) -> dict[str, Any]:
        job = self.jobs[job_id]
        body: dict[str, Any] = {
            "id": job_id,
            "url": f"{self.base_url}/api/v2/job_statuses/{job_id}.json",
            "total": job["total"],
            "progress": 0 if queued else job["total"],
            "status": "queued" if queued else "completed",
            "message": None
            if queued
            else "Completed at " + time.strftime("%Y-%m-%d %H:%M:%S +0000", time.gmtime()),
            "results": None if queued else job["results"],
        }
        return body

    def _job(self, request: Request) -> Response:
        job_id = request.params["id"]
        if job_id not in self.jobs:
            return _error(404, "RecordNotFound", "Not found")
        return json_response({"job_status": self._job_body(job_id)})

    def _incremental_export(self, request: Request) -> Response:
        kind = request.params["kind"]
        per_page = min(int(request.query.get("per_page") or 1000), 1000)
        if "cursor" in request.query:
            try:
                after_ts, after_id = (
                    int(p) for p in base64.urlsafe_b64decode(request.query["cursor"]).split(b":")
                )
            except ValueError:
                return _error(400, "InvalidValue", "cursor is not valid")
        elif "start_time" in request.query:
            after_ts, after_id = int(request.query["start_time"]), -1
        else:
            return _error(400, "InvalidValue", "start_time or cursor is required")
        with self._state:
            items = list(self.users.values()) if kind == "users" else list(self.tickets)
        items.sort(key=lambda r: (r["updated_at"], r["id"]))
        page = [r for r in items if (r["updated_at"], r["id"]) > (after_ts, after_id)][:per_page]
        last = (page[-1]["updated_at"], page[-1]["id"]) if page else (after_ts, after_id)
        cursor = base64.urlsafe_b64encode(f"{last[0]}:{last[1]}".encode()).decode()
        end = not any((r["updated_at"], r["id"]) > last for r in items)
        path = f"/api/v2/incremental/{kind}/cursor.json"
        return json_response(
            {
                kind: [{**r, "updated_at": _iso(r["updated_at"])} for r in page],
                "after_cursor": cursor,
                "before_cursor": None,
                "after_url": f"{self.base_url}{path}?{urlencode({'cursor': cursor, 'per_page': per_page})}",
                "end_of_stream": end,
            }
        )


def _iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _take(calls: deque[float], limit: int, now: float, window: float = 60.0) -> float | None:
    """Count a call in the sliding window, or the seconds until one is allowed."""
    while calls and now - calls[0] >= window:
        calls.popleft()
    if len(calls) >= limit:
        return window - (now - calls[0])
    calls.append(now)
    return None


def _throttled(wait: float) -> Response:
    return json_response(
        {"error": "APIRateLimitExceeded", "description": "Rate limit exceeded"},
        status=429,
        headers={"Retry-After": str(max(1, int(wait + 0.999)))},
    )


def _error(status: int, error: str, description: str) -> Response:
    return json_response({"error": error, "description": description}, status=status)
