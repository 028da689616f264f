"""A loopback stand-in for Iterable's list API and its Export API's JSON export.

Contract followed: Iterable's API reference https://api.iterable.com/api/docs (its OpenAPI
document is mirrored in ``api-evangelist/iterable``, ``openapi/_original/iterable-api-openapi.json``):

* Auth: ``Api-Key: <key>``; a missing or unknown key answers ``401``
  ``{"msg": "Invalid API key", "code": "InvalidApiKey", "params": null}``.
* ``GET /api/lists`` -> ``{"lists": [{"id", "name", "createdAt", "listType": "Standard"}]}``;
  ``POST /api/lists`` ``{"name"}`` -> ``{"listId"}``.
* ``POST /api/lists/subscribe`` / ``/api/lists/unsubscribe`` with ``listId`` and ``subscribers``:
  an unknown list is ``400 {"code": "BadParams"}``; otherwise ``200`` with ``successCount``,
  ``failCount`` and the subscribers not taken in ``invalidEmails`` (not an email address),
  ``invalidUserIds`` (a userId-only subscriber to a new user without ``preferUserId``),
  ``notFoundEmails`` / ``notFoundUserIds`` (unsubscribing a user the project does not have).
* ``GET /api/export/data.json`` (Iterable's Export API: the ``Export`` tag of the same document,
  also mirrored on its own as ``openapi/iterable-export-api-openapi.yml`` there; Iterable's page
  https://support.iterable.com/hc/en-us/articles/204780579-Iterable-API-Endpoints-and-Sample-Payloads
  lists the endpoints): ``dataTypeName``
  required (one of the documented data types, else ``400 BadParams``), and either ``range``
  (``Today``, ``Yesterday``, ``BeforeToday``, ``All``; UTC days) or ``startDateTime`` (inclusive)
  and ``endDateTime`` (exclusive) as ``yyyy-MM-dd HH:mm:ss [ZZ]``; ``onlyFields`` / ``omitFields``
  comma separated. The answer is ``application/x-json-stream``, one JSON object per line, the whole
  window in one response (no paging): users updated in the window (``user``, with ``email``,
  ``userId``, ``profileUpdatedAt`` and the user's data fields at the top level), or the events of
  that type created in it (``createdAt`` ``yyyy-MM-dd HH:mm:ss +00:00``, ``email``, ``userId``,
  ``campaignId``, ``templateId``, ``messageId``, ...). Its documented limit, "4 requests/minute, per
  project", is enforced (:attr:`export_limit`): over it the answer is ``429``
  ``{"code": "RateLimitExceeded"}`` (no rate-limit header is documented for it, so none is sent).
* Rate limit: ``429`` with ``Retry-After`` through :attr:`faults` (``faults.add("429", retry_after=1)``).
"""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer, json_response

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DATA_TYPES = frozenset((
    "user", "emailSend", "emailOpen", "emailClick", "hostedUnsubscribeClick", "emailComplaint", "emailBounce",
    "emailSendSkip", "emailSubscribe", "emailUnSubscribe", "pushSend", "pushOpen", "pushUninstall",
    "pushBounce", "pushSendSkip", "inAppSend", "inAppOpen", "inAppClick", "inAppClose", "inAppDelete",
    "inAppDelivery", "inAppSendSkip", "smsSend", "smsBounce", "smsClick", "smsReceived", "smsSendSkip",
    "webPushSend", "webPushClick", "purchase", "customEvent",
))  # fmt: skip
"""The documented data types the stand-in's export answers (the user, email, push, in-app, SMS,
web push, purchase and custom event ones)."""
_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?: ?(Z|[+-]\d{2}:?\d{2}))?$")


def export_time(ms: int) -> str:
    """Iterable's export time format of epoch milliseconds (UTC)."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S +00:00")


def parse_export_time(text: str) -> int | None:
    """Epoch milliseconds of ``yyyy-MM-dd HH:mm:ss [ZZ]`` (UTC without a zone); ``None`` if malformed."""
    found = _TIME.match(text.strip())
    if found is None:
        return None
    zone = found.group(2) or "+00:00"
    zone = "+00:00" if zone == "Z" else (zone if ":" in zone else f"{zone[:3]}:{zone[3:]}")
    moment = datetime.fromisoformat(f"{found.group(1).replace(' ', 'T')}{zone}")
    return int(moment.timestamp() * 1000)


class IterableSandbox(SandboxHTTPServer):
    """Serves Iterable's list endpoints on 127.0.0.1 for the given API keys.

    :param api_keys: the project's API keys.
    """

    def __init__(self, api_keys: tuple[str, ...] = ("sandbox-iterable-key",), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_keys = set(api_keys)
        self.lists: dict[int, dict[str, Any]] = {}
        self.members: dict[int, set[str]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.subscribers_taken = 0
        self.requests_accepted = 0
        self.exported_users: dict[str, tuple[int, dict[str, Any]]] = {}
        self.events: list[tuple[str, int, dict[str, Any]]] = []
        self.export_limit: tuple[int, float] = (4, 60.0)
        self.export_calls: list[float] = []
        self.export_refused = 0
        self._next_id = 1000
        self._data_lock = threading.Lock()
        self.add_route("GET", "/api/lists", self._get_lists, "lists_get")
        self.add_route("POST", "/api/lists", self._create_list, "lists_create")
        self.add_route("POST", "/api/lists/subscribe", self._subscribe, "lists_subscribe")
        self.add_route("POST", "/api/lists/unsubscribe", self._unsubscribe, "lists_unsubscribe")
        self.add_route("GET", "/api/export/data.json", self._export_json, "export_json")

    @property
    def url(self) -> str:
        return self.base_url

    def connection(self, api_key: str, **extra: Any) -> dict[str, Any]:
        """An Airflow ``iterable`` connection (JSON form) pointing at this stand-in.

        :param api_key: the API key.
        :param extra: the connection's extras (``export_calls_per_minute``).
        """
        found: dict[str, Any] = {"conn_type": "iterable", "host": self.base_url, "password": api_key}
        return {**found, "extra": extra} if extra else found

    def reset(self) -> None:
        with self._data_lock:
            self.lists.clear()
            self.members.clear()
            self.users.clear()
            self.subscribers_taken = self.requests_accepted = 0
            self.exported_users.clear()
            self.events.clear()
            self.export_calls.clear()
            self.export_refused = 0
            self.export_limit = (4, 60.0)

    def list_by_name(self, name: str) -> int | None:
        return next((i for i, item in self.lists.items() if item["name"] == name), None)

    # -- errors and auth ------------------------------------------------------------------------
    def error_response(self, status: int, message: str, request: Request) -> Response:
        code = {400: "BadParams", 401: "InvalidApiKey", 429: "RateLimitExceeded"}.get(status, "GenericError")
        return json_response({"msg": message, "code": code, "params": None}, status)

    def authenticate(self, request: Request) -> Response | None:
        if (request.header("Api-Key") or "") not in self.api_keys:
            return self.error_response(401, "Invalid API key", request)
        return None

    # -- handlers -------------------------------------------------------------------------------
    def _get_lists(self, request: Request) -> Response:
        with self._data_lock:
            return json_response({"lists": list(self.lists.values())})

    def _create_list(self, request: Request) -> Response:
        body = request.json() or {}
        name = str(body.get("name") or "").strip()
        if not name:
            return self.error_response(400, "name is required", request)
        with self._data_lock:
            self._next_id += 1
            self.lists[self._next_id] = {"id": self._next_id, "name": name, "listType": "Standard"}
            self.members[self._next_id] = set()
            return json_response({"listId": self._next_id})

    def _bulk(self, request: Request) -> tuple[int, list[dict[str, Any]]] | Response:
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("subscribers"), list):
            return self.error_response(400, "listId and subscribers are required", request)
        list_id = body.get("listId")
        if not isinstance(list_id, int) or list_id not in self.lists:
            return self.error_response(400, f"List {list_id} does not exist", request)
        return list_id, body["subscribers"]

    def _subscribe(self, request: Request) -> Response:
        parsed = self._bulk(request)
        if isinstance(parsed, Response):
            return parsed
        list_id, subscribers = parsed
        answer: dict[str, Any] = {"invalidEmails": [], "invalidUserIds": [], "successCount": 0}
        with self._data_lock:
            for sub in subscribers:
                email, user_id = sub.get("email"), sub.get("userId")
                if email is not None:
                    if not _EMAIL.match(str(email)):
                        answer["invalidEmails"].append(email)
                        continue
                    key = f"email:{str(email).lower()}"
                elif user_id is not None:
                    key = f"userId:{user_id}"
                    if key not in self.users and not sub.get("preferUserId"):
                        answer["invalidUserIds"].append(user_id)
                        continue
                else:
                    answer["invalidEmails"].append(None)
                    continue
                profile = self.users.setdefault(key, {})
                profile.update(sub.get("dataFields") or {})
                self.members[list_id].add(key)
                answer["successCount"] += 1
            self.subscribers_taken += answer["successCount"]
            self.requests_accepted += 1
        answer["failCount"] = len(subscribers) - answer["successCount"]
        return json_response(answer)

    def _unsubscribe(self, request: Request) -> Response:
        parsed = self._bulk(request)
        if isinstance(parsed, Response):
            return parsed
        list_id, subscribers = parsed
        answer: dict[str, Any] = {"notFoundEmails": [], "notFoundUserIds": [], "successCount": 0}
        with self._data_lock:
            for sub in subscribers:
                email, user_id = sub.get("email"), sub.get("userId")
                key = f"email:{str(email).lower()}" if email is not None else f"userId:{user_id}"
                if key not in self.users:
                    answer["notFoundEmails" if email is not None else "notFoundUserIds"].append(
                        email or user_id
                    )
                    continue
                self.members[list_id].discard(key)
                answer["successCount"] += 1
            self.subscribers_taken += answer["successCount"]
            self.requests_accepted += 1
        answer["failCount"] = len(subscribers) - answer["successCount"]
        return json_response(answer)

    # -- export ---------------------------------------------------------------------------------
    def put_user(self, email: str, updated_ms: int, user_id: str | None = None, **fields: Any) -> None:
        """Create or update a user as of ``updated_ms`` (what a ``user`` export reads)."""
        with self._data_lock:
            _, record = self.exported_users.get(email.lower(), (0, {"email": email}))
            record = {**record, **fields, "profileUpdatedAt": export_time(updated_ms)}
            record.setdefault("signupDate", export_time(updated_ms))
            if user_id is not None:
                record["userId"] = user_id
            self.exported_users[email.lower()] = (updated_ms, record)

    def add_event(self, data_type: str, email: str, created_ms: int, **fields: Any) -> None:
        """Record an event of ``data_type`` created at ``created_ms``."""
        record = {"createdAt": export_time(created_ms), "email": email, **fields}
        with self._data_lock:
            self.events.append((data_type, created_ms, record))

    def _window(self, request: Request) -> tuple[int, int] | str:
        """``[start, end)`` in epoch ms of ``range`` or ``startDateTime`` / ``endDateTime``; or the error."""
        if request.query.get("range"):
            today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            day = timedelta(days=1)
            ranges = {
                "Today": (today, today + day),
                "Yesterday": (today - day, today),
                "BeforeToday": (datetime(1970, 1, 1, tzinfo=UTC), today),
                "All": (datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)),
            }
            if request.query["range"] not in ranges:
                return f"range must be one of {', '.join(ranges)}"
            start, end = ranges[request.query["range"]]
            return int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        start = parse_export_time(request.query.get("startDateTime") or "")
        end = parse_export_time(request.query.get("endDateTime") or "")
        if start is None or end is None:
            return "Use either range or startDateTime and endDateTime (yyyy-MM-dd HH:mm:ss [ZZ])"
        return start, end

    def _over_export_limit(self) -> bool:
        limit, window = self.export_limit
        now = time.monotonic()
        with self._data_lock:
            self.export_calls = [t for t in self.export_calls if now - t < window]
            if len(self.export_calls) >= limit:
                self.export_refused += 1
                return True
            self.export_calls.append(now)
            return False

    def _export_json(self, request: Request) -> Response:
        if self._over_export_limit():
            return self.error_response(429, "Rate limit exceeded: 4 requests/minute, per project", request)
        data_type = request.query.get("dataTypeName") or ""
        if data_type not in DATA_TYPES:
            return self.error_response(400, f"Invalid dataTypeName {data_type!r}", request)
        window = self._window(request)
        if isinstance(window, str):
            return self.error_response(400, window, request)
        start, end = window
        with self._data_lock:
            if data_type == "user":
                found = [dict(r) for when, r in self.exported_users.values() if start <= when < end]
            else:
                found = [
                    dict(r) for kind, when, r in self.events if kind == data_type and start <= when < end
                ]
        only = [f for f in (request.query.get("onlyFields") or "").split(",") if f]
        omit = {f for f in (request.query.get("omitFields") or "").split(",") if f}
        lines = [
            json.dumps({k: v for k, v in r.items() if (not only or k in only) and k not in omit})
            for r in found
        ]
        body = "".join(f"{line}\n" for line in lines).encode()
        return Response(status=200, body=body, content_type="application/x-json-stream")

    # -- read-back for tests --------------------------------------------------------------------
    def held(self, list_id: int | None) -> set[str]:
        """Keys (``email:...`` / ``userId:...``) subscribed to the list."""
        with self._data_lock:
            return set(self.members.get(list_id, set())) if list_id is not None else set()
