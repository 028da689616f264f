"""A loopback stand-in for Iterable's list API.

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
* Rate limit: ``429`` with ``Retry-After`` through :attr:`faults` (``faults.add("429", retry_after=1)``).
"""

from __future__ import annotations

import re
import threading
from typing import Any

from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer, json_response

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


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
        self._next_id = 1000
        self._data_lock = threading.Lock()
        self.add_route("GET", "/api/lists", self._get_lists, "lists_get")
        self.add_route("POST", "/api/lists", self._create_list, "lists_create")
        self.add_route("POST", "/api/lists/subscribe", self._subscribe, "lists_subscribe")
        self.add_route("POST", "/api/lists/unsubscribe", self._unsubscribe, "lists_unsubscribe")

    @property
    def url(self) -> str:
        return self.base_url

    def connection(self, api_key: str) -> dict[str, Any]:
        """An Airflow ``iterable`` connection (JSON form) pointing at this stand-in."""
        return {"conn_type": "iterable", "host": self.base_url, "password": api_key}

    def reset(self) -> None:
        with self._data_lock:
            self.lists.clear()
            self.members.clear()
            self.users.clear()
            self.subscribers_taken = self.requests_accepted = 0

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

    # -- read-back for tests --------------------------------------------------------------------
    def held(self, list_id: int | None) -> set[str]:
        """Keys (``email:...`` / ``userId:...``) subscribed to the list."""
        with self._data_lock:
            return set(self.members.get(list_id, set())) if list_id is not None else set()
