"""Hook and destination adapter for Iterable's list API (``/api/lists``, ``/api/lists/subscribe``,
``/api/lists/unsubscribe``), and the hook's reads of the Export API (``/api/export/data.json``).

Contract (Iterable's published API reference, https://api.iterable.com/api/docs; the OpenAPI
document it serves is mirrored in ``api-evangelist/iterable``,
``openapi/_original/iterable-api-openapi.json``):

* Auth: the project's API key in the ``Api-Key`` header. Hosts: ``https://api.iterable.com``
  (US data center) and ``https://api.eu.iterable.com`` (EU data center).
* ``POST /api/lists`` ``{"name": ...}`` -> ``{"listId": n}``; ``GET /api/lists`` ->
  ``{"lists": [{"id", "name", ...}]}``.
* ``POST /api/lists/subscribe`` ``{"listId", "subscribers": [{"email"?, "userId"?, "dataFields"?,
  "preferUserId"?}]}`` and ``POST /api/lists/unsubscribe`` ``{"listId", "subscribers": [...],
  "channelUnsubscribe": false}`` answer ``{"successCount", "failCount", "invalidEmails",
  "invalidUserIds", "notFoundEmails", "notFoundUserIds"}``: the request succeeds and the
  subscribers named in those arrays are the ones Iterable did not take.
* ``GET /api/export/data.json?dataTypeName=<type>&startDateTime=<from>&endDateTime=<to>``
  (``yyyy-MM-dd HH:mm:ss [ZZ]``; from inclusive, to exclusive; ``onlyFields`` comma separated)
  answers every record of the type in the window as JSON lines (``application/x-json-stream``), in
  one response with no paging; "4 requests/minute, per project" (the Export API's own limit, held by
  a budget of the connection that every task shares).
* Errors: ``{"msg": ..., "code": "InvalidApiKey" | "BadParams" | ..., "params": ...}`` with 400 / 401;
  ``429`` when over the project's rate limit (``Retry-After`` is honoured when sent).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import requests

from lytics_provider.hooks.rest import RestHook
from lytics_provider.hooks.rest_auth import HeaderToken
from lytics_provider.hooks.rest_errors import code_and_message
from lytics_provider.sync.destination import SyncDestination
from lytics_provider.sync.plan import Outcome, Work

DATA_CENTERS = {"US": "https://api.iterable.com", "EU": "https://api.eu.iterable.com"}
DEFAULT_BATCH_SIZE = 1000
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
FAILURE_KEYS = ("invalidEmails", "invalidUserIds", "notFoundEmails", "notFoundUserIds")
EXPORT_PATH = "/api/export/data.json"
EXPORT_CALLS_PER_MINUTE = 4
EXPORT_WINDOW = 61.0
"""Seconds of the export budget's window: Iterable's minute and a second of margin (a call is
counted when it leaves, Iterable counts it when it arrives)."""


iterable_error = code_and_message("code", "msg")
"""The text of an Iterable error body (``{"msg": ..., "code": ...}``)."""


class IterableHook(RestHook):
    """Call Iterable's API with the API key of an ``iterable`` connection.

    Connection: Password = Iterable API Key (server-side key with list and export permissions),
    extra ``data_center`` = ``US`` (default) or ``EU``; Host overrides the data center's API host;
    extra ``export_calls_per_minute`` lowers (or, for a stand-in, raises) the Export API budget of 4.

    :param iterable_conn_id: the ``iterable`` connection (default ``iterable_default``).
    :param kwargs: :class:`~lytics_provider.hooks.rest.RestHook`'s arguments.
    """

    conn_type = "iterable"
    hook_name = "Iterable"
    auth = HeaderToken("Api-Key")
    regional_hosts = DATA_CENTERS
    region_extra = "data_center"
    credentials_hint = "needs the Iterable API Key in Password."
    error_text = staticmethod(iterable_error)
    check_path = "/api/lists"

    def auth_fix(self) -> str:
        return "Check the Iterable API Key (a server-side key of this project, in this data center)."

    def lists(self) -> list[dict[str, Any]]:
        body = self.call("GET", "/api/lists")
        return list((body or {}).get("lists") or [])

    def create_list(self, name: str) -> int:
        body = self.call("POST", "/api/lists", json={"name": name})
        return int(body["listId"])

    def resolve_list(self, list_id: int | None, list_name: str | None, create: bool) -> tuple[int, str]:
        """(id, name) of the list: ``list_id`` if it exists, else the one named ``list_name``
        (created when missing and ``create``)."""
        lists = self.lists()
        if list_id is not None:
            found = next((item for item in lists if int(item.get("id", -1)) == int(list_id)), None)
            if found is None:
                raise ValueError(f"Iterable list {list_id} does not exist in this project; check list_id")
            return int(list_id), str(found.get("name") or "")
        if not list_name:
            raise ValueError("set list_id or list_name")
        found = next((item for item in lists if item.get("name") == list_name), None)
        if found is not None:
            return int(found["id"]), list_name
        if not create:
            raise ValueError(f"no Iterable list named {list_name!r}; set create_list: true to create it")
        return self.create_list(list_name), list_name

    def subscribe(self, list_id: int, subscribers: list[dict[str, Any]]) -> dict[str, Any]:
        return dict(
            self.call("POST", "/api/lists/subscribe", json={"listId": list_id, "subscribers": subscribers})
        )

    def unsubscribe(self, list_id: int, subscribers: list[dict[str, Any]]) -> dict[str, Any]:
        body = {"listId": list_id, "subscribers": subscribers, "channelUnsubscribe": False}
        return dict(self.call("POST", "/api/lists/unsubscribe", json=body))

    def export_to_file(
        self, data_type: str, start: str, end: str, target: Path, only_fields: Sequence[str] = ()
    ) -> int:
        """Save the Export API's records of ``data_type`` in ``[start, end)`` to ``target`` (JSON
        lines, written whole or not at all); the number of records.

        :param data_type: the export's ``dataTypeName`` (``user``, ``emailOpen``, ...).
        :param start: the window's start, ``yyyy-MM-dd HH:mm:ss +00:00`` (inclusive).
        :param end: the window's end, same format (exclusive).
        :param target: the file written.
        :param only_fields: the fields exported (``onlyFields``; empty: every field).
        """
        client = self.get_conn()
        limit = int(self.extra.get("export_calls_per_minute") or EXPORT_CALLS_PER_MINUTE)
        self.side_budget("export", "key", limit, EXPORT_WINDOW)
        params = {"dataTypeName": data_type, "startDateTime": start, "endDateTime": end}
        if only_fields:
            params["onlyFields"] = ",".join(only_fields)
        partial = target.with_name(f"{target.name}.part")
        count = client.fetch(
            "GET", EXPORT_PATH, lambda response: _save_lines(response, partial), params=params, stream=True
        )
        partial.replace(target)
        return count


def _save_lines(response: requests.Response, target: Path) -> int:
    """Write the non-blank lines of a JSON lines answer to ``target``; how many."""
    count = 0
    with target.open("w", encoding="utf-8") as out:
        for raw in response.iter_lines():
            line = raw.decode("utf-8").strip()
            if line:
                out.write(line + "\n")
                count += 1
    return count


def failed_identifiers(answer: dict[str, Any]) -> dict[str, str]:
    """``email:...`` / ``userId:...`` -> reason, from a bulk list answer's failure arrays."""
    failed: dict[str, str] = {}
    for key in FAILURE_KEYS:
        kind = "email" if "Email" in key else "userId"
        for value in answer.get(key) or []:
            text = str(value).lower() if kind == "email" else str(value)
            failed[f"{kind}:{text}"] = f"Iterable did not take the subscriber: {key}"
    return failed


class IterableListDestination(SyncDestination):
    """Enter: subscribe to one Iterable list (dataFields: the exported fields); exit: unsubscribe
    from the list (only members this job subscribed; ``channelUnsubscribe`` false, so the user
    keeps its channel subscriptions).

    :param hook: the Iterable hook.
    :param list_id: the list.
    :param email_field: member field holding the email.
    :param user_id_field: member field holding the Iterable userId.
    :param prefer_user_id: subscribe members without an email by userId (``preferUserId``; Iterable
        gives them a placeholder email).
    :param export_fields: member fields sent as ``dataFields``.
    :param batch_size: subscribers per request.
    :param trigger_fields: Fields to Trigger: a member already subscribed is sent again only when
        one of these moved (default: the exported fields).
    """

    tracked_exit_actions = ("unsubscribe",)

    def __init__(
        self,
        hook: IterableHook,
        list_id: int,
        email_field: str | None = "email",
        user_id_field: str | None = None,
        prefer_user_id: bool = False,
        export_fields: Sequence[str] = (),
        batch_size: int = DEFAULT_BATCH_SIZE,
        trigger_fields: Sequence[str] | None = None,
    ) -> None:
        self.hook = hook
        self.list_id = int(list_id)
        self.email_field = email_field
        self.user_id_field = user_id_field
        self.prefer_user_id = prefer_user_id
        self.export_fields = [f for f in export_fields if f not in ("_uid", email_field, user_id_field)]
        self.batch_size = batch_size
        self.trigger_fields = list(trigger_fields or self.export_fields) or None
        self.enter_kinds = ("enter", "change") if self.export_fields else ("enter",)
        self.requests = 0

    # -- planning ---------------------------------------------------------------------------
    def identify(self, record: dict[str, Any]) -> tuple[str, str | None]:
        email = str(record.get(self.email_field) or "").strip().lower() if self.email_field else ""
        user_id = str(record.get(self.user_id_field) or "").strip() if self.user_id_field else ""
        if email:
            return f"email:{email}", user_id or None
        if user_id:
            return f"userId:{user_id}", None
        return "", None

    def invalid_reason(self, ident: str, record: dict[str, Any]) -> str | None:
        kind, _, value = ident.partition(":")
        if not ident:
            return f"no email ({self.email_field}) and no userId ({self.user_id_field})"
        if kind == "email" and not _EMAIL.match(value):
            return f"email {value!r} is not an email address"
        if kind == "userId" and not self.prefer_user_id:
            return "no email; set prefer_user_id to subscribe members by userId"
        return None

    def targets(self, record: dict[str, Any]) -> list[str]:
        return [str(self.list_id)]

    def payload(self, record: dict[str, Any]) -> dict[str, Any]:
        return {name: record.get(name) for name in self.export_fields if record.get(name) is not None}

    def exit_action(self) -> str:
        return "unsubscribe"

    def describe(self) -> dict[str, Any]:
        return {"list_id": self.list_id, "prefer_user_id": self.prefer_user_id}

    def describe_after(self) -> dict[str, Any]:
        return {"iterable_requests": self.requests}

    # -- acting -----------------------------------------------------------------------------
    def subscriber(self, work: Work, with_fields: bool) -> dict[str, Any]:
        kind, _, value = work.ident.partition(":")
        found: dict[str, Any] = {kind: value}
        if kind == "email" and work.ref:
            found["userId"] = work.ref
        if kind == "userId":
            found["preferUserId"] = True
        if with_fields:
            fields = work.fields()
            if fields:
                found["dataFields"] = fields
        return found

    def _outcomes(
        self, target: str, rows: list[Work], action: str, answer: dict[str, Any]
    ) -> Iterable[Outcome]:
        self.requests += 1
        failed = failed_identifiers(answer)
        for work in rows:
            reason = failed.get(work.ident)
            status = "Rejected" if reason else ("Subscribed" if action == "add" else "Unsubscribed")
            yield (work.ident, target, action, work.uid, status, None, reason)

    def add(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        answer = self.hook.subscribe(self.list_id, [self.subscriber(w, True) for w in rows])
        return list(self._outcomes(target, rows, "add", answer))

    def unsubscribe(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        answer = self.hook.unsubscribe(self.list_id, [self.subscriber(w, False) for w in rows])
        return list(self._outcomes(target, rows, "unsubscribe", answer))
