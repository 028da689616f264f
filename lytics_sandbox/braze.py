"""A loopback stand-in for Braze's User Track API (``POST /users/track``).

Contract followed: Braze's REST API reference,
https://www.braze.com/docs/api/endpoints/user_data/post_user_track/ (source ``braze-inc/braze-docs``,
``_docs/_api/endpoints/user_data/post_user_track.md``), its rate limits
https://www.braze.com/docs/api/api_limits/ and its errors https://www.braze.com/docs/api/errors/:

* Auth: ``Authorization: Bearer <REST API key>``; an unknown key answers ``401`` with
  ``{"message": "Invalid API key: ..."}``.
* Body: ``{"attributes": [...], "events": [...], "purchases": [...]}``; at most 75 attribute objects
  per request (more: a fatal ``400``). Each object names its user by ``external_id``,
  ``braze_id``, ``user_alias`` (``alias_name`` + ``alias_label``), ``email`` or ``phone``; an alias-only
  user is created only with ``"_update_existing_only": false``.
* Answers: ``201 {"message": "success", "attributes_processed": n}``; objects that cannot be used
  (no identifier, an invalid email or phone) are left out and named in ``errors``
  (``{"type": ..., "input_array": "attributes", "index": i}``) while the rest is processed. Fatal
  errors: ``{"message": ..., "errors": [...]}`` with 400 / 401 / 429 / 5xx.
* Rate limit: when :attr:`BrazeSandbox.rate_limit` is set to ``(requests, seconds)``, windows
  start on multiples of ``seconds`` (they are not rolling); a request over the window's count
  answers ``429`` with ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset``
  (UTC epoch seconds of the window's end) and no ``Retry-After``.
* Setting an attribute to ``null`` removes it from the profile.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from typing import Any

from lytics_sandbox.faults import FaultRule
from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer, json_response

MAX_OBJECTS = 75
IDENTIFIERS = ("external_id", "braze_id", "user_alias", "email", "phone")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ().-]{5,}$")


def user_key(obj: dict[str, Any]) -> tuple[str | None, str | None]:
    """(the user's key, None) or (None, why the object names no usable user)."""
    for kind in IDENTIFIERS:
        if kind not in obj or obj[kind] in (None, ""):
            continue
        value = obj[kind]
        if kind == "user_alias":
            if not isinstance(value, dict) or not value.get("alias_name") or not value.get("alias_label"):
                return None, "'user_alias' needs 'alias_name' and 'alias_label'"
            return f"user_alias:{value['alias_label']}:{value['alias_name']}", None
        text = str(value)
        if kind == "email" and not _EMAIL.match(text):
            return None, f"Invalid email address: {text!r}"
        if kind == "phone" and not _PHONE.match(text):
            return None, f"Invalid phone number: {text!r}"
        return f"{kind}:{text.lower() if kind == 'email' else text}", None
    return None, "'external_id', 'braze_id', 'user_alias', 'email' or 'phone' is required"


class BrazeSandbox(SandboxHTTPServer):
    """Serves ``/users/track`` on 127.0.0.1 for the given REST API keys.

    :param api_keys: the REST API keys that exist.
    :param rate_limit: ``(requests, seconds)`` enforced per fixed window, or None.
    """

    def __init__(
        self,
        api_keys: tuple[str, ...] = ("sandbox-braze-key",),
        rate_limit: tuple[int, float] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.api_keys = set(api_keys)
        self.rate_limit = rate_limit
        self.users: dict[str, dict[str, Any]] = {}
        self.objects_processed = 0
        self.requests_accepted = 0
        self.rate_limited = 0
        self.accepted_at: list[float] = []
        self._window: tuple[int, int] = (0, 0)
        self._data_lock = threading.Lock()
        self.add_route("POST", "/users/track", self._users_track, "users_track")

    @property
    def url(self) -> str:
        return self.base_url

    def connection(self, api_key: str) -> dict[str, Any]:
        """An Airflow ``braze`` connection (JSON form) pointing at this stand-in."""
        return {
            "conn_type": "braze",
            "host": self.base_url,
            "password": api_key,
            "extra": {"braze_instance": "US-01"},
        }

    def reset(self) -> None:
        with self._data_lock:
            self.users.clear()
            self.objects_processed = self.requests_accepted = self.rate_limited = 0
            self.accepted_at.clear()
            self._window = (0, 0)

    # -- errors ---------------------------------------------------------------------------------
    def error_response(self, status: int, message: str, request: Request) -> Response:
        return json_response({"message": message, "errors": [message]}, status)

    def fault_response(self, rule: FaultRule, request: Request) -> Response:
        resp = super().fault_response(rule, request)
        if rule.kind == "429":
            resp.headers.pop("Retry-After", None)
            resp.headers["X-RateLimit-Reset"] = str(math.ceil(time.time() + float(rule.retry_after or 1)))
        return resp

    def authenticate(self, request: Request) -> Response | None:
        header = request.header("Authorization") or ""
        key = header[7:].strip() if header.startswith("Bearer ") else ""
        if key not in self.api_keys:
            return json_response({"message": "Invalid API key: the key is unknown or lacks users.track"}, 401)
        return None

    def _over_limit(self) -> Response | None:
        if self.rate_limit is None:
            return None
        limit, seconds = self.rate_limit
        now = time.time()
        window = int(now // seconds)
        with self._data_lock:
            current, used = self._window
            used = used if current == window else 0
            if used >= limit:
                self.rate_limited += 1
                reset = (window + 1) * seconds
                headers = {
                    "X-RateLimit-Limit": str(limit),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(math.ceil(reset)),
                }
                return json_response({"message": "Rate limit exceeded"}, 429, headers)
            self._window = (window, used + 1)
        return None

    # -- handler --------------------------------------------------------------------------------
    def _users_track(self, request: Request) -> Response:
        limited = self._over_limit()
        if limited is not None:
            return limited
        try:
            body = json.loads(request.body or b"")
        except ValueError:
            return self.error_response(400, "Received unparseable request", request)
        if not isinstance(body, dict):
            return self.error_response(400, "Request body must be a JSON object", request)
        attributes = body.get("attributes") or []
        if not isinstance(attributes, list):
            return self.error_response(400, "'attributes' must be an array of attribute objects", request)
        if len(attributes) > MAX_OBJECTS:
            return self.error_response(
                400, f"Too many attribute objects: {len(attributes)}; the limit is {MAX_OBJECTS}", request
            )
        if not attributes and not body.get("events") and not body.get("purchases"):
            return self.error_response(400, "The request has no attributes, events or purchases", request)
        errors: list[dict[str, Any]] = []
        processed = 0
        with self._data_lock:
            for index, obj in enumerate(attributes):
                key, problem = user_key(obj) if isinstance(obj, dict) else (None, "not an object")
                if key is None:
                    errors.append({"type": problem, "input_array": "attributes", "index": index})
                    continue
                if (
                    key.startswith("user_alias:")
                    and key not in self.users
                    and obj.get("_update_existing_only", True)
                ):
                    errors.append(
                        {"type": "alias-only user not found", "input_array": "attributes", "index": index}
                    )
                    continue
                profile = self.users.setdefault(key, {})
                for name, value in obj.items():
                    if name in IDENTIFIERS[:3] or name == "_update_existing_only":
                        continue
                    if value is None:
                        profile.pop(name, None)
                    else:
                        profile[name] = value
                processed += 1
            self.objects_processed += processed
            self.requests_accepted += 1
            self.accepted_at.append(time.time())
        answer: dict[str, Any] = {"message": "success", "attributes_processed": processed}
        if errors:
            answer["errors"] = errors
        return json_response(answer, 201)

    # -- read-back for tests --------------------------------------------------------------------
    def members(self, attribute: str) -> set[str]:
        """Keys (``email:...``, ``external_id:...``) of the users whose ``attribute`` is true."""
        with self._data_lock:
            return {key for key, profile in self.users.items() if profile.get(attribute) is True}
