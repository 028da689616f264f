"""Hook and destination adapter for Braze's User Track API (``POST /users/track``).

Contract (Braze's published REST API docs): https://www.braze.com/docs/api/endpoints/user_data/post_user_track/
and https://www.braze.com/docs/api/api_limits/ (source ``braze-inc/braze-docs``,
``_docs/_api/endpoints/user_data/post_user_track.md``):

* ``Authorization: Bearer <REST API key>`` (the key needs the ``users.track`` permission);
  the host is the REST endpoint of the workspace's **Braze Instance** (``US-01`` ->
  ``rest.iad-01.braze.com``, ``EU-01`` -> ``rest.fra-01.braze.eu``, ...).
* One request carries at most 75 attribute objects; each names its user by one of
  ``external_id``, ``braze_id``, ``user_alias`` (``alias_name`` + ``alias_label``), ``email`` or
  ``phone``.
* Success is ``{"message": "success", "attributes_processed": n}``; a request that is accepted
  with non-fatal errors also carries ``errors``: ``[{"type": ..., "input_array": "attributes",
  "index": i}]``, one per refused object (everything else is processed). A fatal error is a 4xx
  / 5xx whose body is ``{"message": ..., "errors": [...]}``.
* Rate limit of ``/users/track``: 3,000 requests per three seconds per workspace (the default;
  the connection extras ``calls_per_hour`` and ``budget_window_seconds`` set another, e.g.
  50,000 per 60 s for a workspace on the older per-minute limit). Over it Braze answers ``429``
  with ``X-RateLimit-Reset`` (UTC epoch seconds; no ``Retry-After``), which pauses every task of
  the connection until then.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from lytics_provider.hooks.rest import JSON_HEADERS, RestHook
from lytics_provider.hooks.rest_auth import Bearer
from lytics_provider.hooks.rest_errors import error_reader
from lytics_provider.pipeline.http import PermanentServiceError
from lytics_provider.sync.destination import SyncDestination
from lytics_provider.sync.plan import Outcome, Work

MAX_ATTRIBUTES_PER_REQUEST = 75
TRACK_PATH = "/users/track"

BRAZE_INSTANCES: dict[str, str] = {
    **{f"US-0{n}": f"https://rest.iad-0{n}.braze.com" for n in range(1, 9)},
    "US-10": "https://rest.us-10.braze.com",
    "EU-01": "https://rest.fra-01.braze.eu",
    "EU-02": "https://rest.fra-02.braze.eu",
    "AU-01": "https://rest.au-01.braze.com",
    "ID-01": "https://rest.id-01.braze.com",
}
"""Braze Instance -> REST endpoint (https://www.braze.com/docs/api/basics/#endpoints)."""

IdentifierKind = Literal["external_id", "braze_id", "user_alias", "email", "phone"]
IDENTIFIER_ORDER: tuple[IdentifierKind, ...] = ("external_id", "braze_id", "user_alias", "email", "phone")
_PHONE = re.compile(r"^\+?[0-9][0-9 ().-]{5,}$")


@error_reader
def braze_error(body: dict[str, Any]) -> str | None:
    """The text of a Braze error body (``{"message": ..., "errors": [...]}``)."""
    parts = [str(body.get("message") or "")]
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        parts.append("; ".join(str(e.get("type") if isinstance(e, dict) else e) for e in errors[:5]))
    return ": ".join(p for p in parts if p)


def instance_url(instance: str) -> str:
    """The REST endpoint of a Braze Instance (``US-01``; a URL or host is used as it is)."""
    value = instance.strip()
    if "." in value or "://" in value:
        return value if "://" in value else f"https://{value}"
    url = BRAZE_INSTANCES.get(value.upper())
    if url is None:
        raise ValueError(
            f"unknown Braze Instance {instance!r}; use one of {', '.join(BRAZE_INSTANCES)} "
            "(Settings > APIs and Identifiers in the dashboard), or its REST endpoint"
        )
    return url


class BrazeHook(RestHook):
    """Call Braze's REST API with the REST API key of a ``braze`` connection.

    Connection: Password = REST API key, extra ``braze_instance`` = the Braze Instance (``US-01``
    ...), Host = the REST endpoint (optional; overrides the instance).

    :param braze_conn_id: the ``braze`` connection (default ``braze_default``).
    :param kwargs: :class:`~lytics_provider.hooks.rest.RestHook`'s arguments.
    """

    conn_type = "braze"
    hook_name = "Braze"
    auth = Bearer()
    credentials_hint = "needs the Braze REST API key in Password."
    error_text = staticmethod(braze_error)
    calls_per_hour = 3000
    budget_window = 3.0
    budget_margin = 0.1
    default_headers = JSON_HEADERS
    reset_header = "X-RateLimit-Reset"

    def default_api_url(self) -> str:
        instance = str(self.extra.get("braze_instance") or "").strip()
        if not instance:
            raise ValueError(
                f"Connection {self.conn_id!r} needs the Braze Instance (extra braze_instance, e.g. US-01) "
                "or the REST endpoint in Host."
            )
        return instance_url(instance)

    def auth_fix(self) -> str:
        return "Check the REST API key and that it has the users.track permission for this workspace."

    def track_attributes(self, attributes: list[dict[str, Any]]) -> dict[str, Any]:
        """``POST /users/track`` with up to 75 attribute objects; the decoded answer."""
        if len(attributes) > MAX_ATTRIBUTES_PER_REQUEST:
            raise ValueError(f"{len(attributes)} attribute objects; Braze takes {MAX_ATTRIBUTES_PER_REQUEST}")
        body = self.call("POST", TRACK_PATH, json={"attributes": attributes})
        return body if isinstance(body, dict) else {}

    def check_call(self) -> str:
        """An empty ``/users/track`` call: the key is accepted unless Braze answers 401/403."""
        try:
            self.call("POST", TRACK_PATH, json={"attributes": []})
        except PermanentServiceError as exc:
            if exc.status in (401, 403):
                raise
            return f"POST {TRACK_PATH} accepted the key ({exc.status} for an empty request)"
        return f"POST {TRACK_PATH} accepted the key"


def refused_rows(answer: dict[str, Any], size: int) -> dict[int, str]:
    """Index -> reason of the attribute objects a partial-success answer names."""
    refused: dict[int, str] = {}
    for error in answer.get("errors") or []:
        if not isinstance(error, dict):
            continue
        index = error.get("index")
        if error.get("input_array", "attributes") != "attributes" or not isinstance(index, int):
            continue
        if 0 <= index < size:
            refused[index] = f"Braze refused the attributes: {error.get('type') or 'no reason given'}"
    return refused


class BrazeAudienceDestination(SyncDestination):
    """Audience membership as a custom attribute on Braze users, through ``/users/track``.

    Enter: the member's identifier, the exported fields and ``membership_attribute: true``.
    Exit (only for members this job set): ``membership_attribute: false`` (``on_exit:
    set_false``), or ``null``, which removes the attribute (``remove_attribute``), or nothing
    (``ignore``). A member's identifier is the first configured one it has a value for, in the
    seed's order External User ID, Braze ID, User Alias, Email, Phone.

    :param hook: the Braze hook.
    :param identifiers: Braze identifier -> the member field holding it (``user_alias``: the
        field holding the alias name).
    :param user_alias_label: the alias label sent with ``user_alias``.
    :param membership_attribute: the custom attribute that holds membership.
    :param on_exit: what an exit does to the attribute.
    :param export_fields: member fields sent as attributes under their own names.
    :param batch_size: attribute objects per request (at most 75).
    :param trigger_fields: a member whose fields moved is sent again only when one of these moved
        (default: the exported fields; nothing is resent when no field is exported).
    """

    tracked_exit_actions = ("remove",)

    def __init__(
        self,
        hook: BrazeHook,
        identifiers: dict[IdentifierKind, str],
        membership_attribute: str,
        user_alias_label: str | None = None,
        on_exit: Literal["set_false", "remove_attribute", "ignore"] = "set_false",
        export_fields: Sequence[str] = (),
        batch_size: int = MAX_ATTRIBUTES_PER_REQUEST,
        trigger_fields: Sequence[str] | None = None,
    ) -> None:
        if not identifiers:
            raise ValueError("set at least one Braze identifier field")
        if not 1 <= batch_size <= MAX_ATTRIBUTES_PER_REQUEST:
            raise ValueError(f"batch_size must be 1 to {MAX_ATTRIBUTES_PER_REQUEST}")
        self.hook = hook
        self.identifiers = {k: identifiers[k] for k in IDENTIFIER_ORDER if identifiers.get(k)}
        self.user_alias_label = user_alias_label
        self.membership_attribute = membership_attribute
        self.on_exit = on_exit
        self.export_fields = [f for f in export_fields if f not in ("_uid",)]
        self.batch_size = batch_size
        self.trigger_fields = list(trigger_fields or self.export_fields) or None
        self.enter_kinds = ("enter", "change") if self.export_fields else ("enter",)
        self.requests = 0
        self.processed = 0

    # -- planning ---------------------------------------------------------------------------
    def identify(self, record: dict[str, Any]) -> tuple[str, str | None]:
        for kind, field in self.identifiers.items():
            value = record.get(field)
            if value not in (None, "", []):
                text = str(value).strip()
                if text:
                    return f"{kind}:{text.lower() if kind == 'email' else text}", None
        return "", None

    def invalid_reason(self, ident: str, record: dict[str, Any]) -> str | None:
        if not ident:
            fields = ", ".join(f"{field} ({kind})" for kind, field in self.identifiers.items())
            return f"no Braze identifier: the member has no value in {fields}"
        kind, _, value = ident.partition(":")
        if kind == "phone" and not _PHONE.match(value):
            return f"phone {value!r} is not a phone number (E.164, e.g. +15043277269)"
        return None

    def payload(self, record: dict[str, Any]) -> dict[str, Any]:
        fields = [*self.export_fields, *(f for f in self.identifiers.values() if f not in self.export_fields)]
        return {name: record.get(name) for name in fields if record.get(name) is not None}

    def exit_action(self) -> str:
        return "ignore" if self.on_exit == "ignore" else "remove"

    def describe(self) -> dict[str, Any]:
        return {
            "membership_attribute": self.membership_attribute,
            "identifiers": dict(self.identifiers),
            "on_exit": self.on_exit,
        }

    def describe_after(self) -> dict[str, Any]:
        return {"braze_requests": self.requests, "attributes_processed": self.processed}

    # -- acting -----------------------------------------------------------------------------
    def user_object(self, ident: str) -> dict[str, Any]:
        """The identifying part of an attribute object."""
        kind, _, value = ident.partition(":")
        if kind == "user_alias":
            return {"user_alias": {"alias_name": value, "alias_label": self.user_alias_label}}
        return {kind: value}

    def attributes_of(self, work: Work, member: bool) -> dict[str, Any]:
        obj = self.user_object(work.ident)
        if member:
            renamed = {field: kind for kind, field in self.identifiers.items() if kind in ("email", "phone")}
            for name, value in work.fields().items():
                if name in renamed or name in self.export_fields:
                    obj.setdefault(renamed.get(name, name), value)
            obj[self.membership_attribute] = True
        else:
            obj[self.membership_attribute] = False if self.on_exit == "set_false" else None
        if "user_alias" in obj:
            obj["_update_existing_only"] = False
        return obj

    def _send(self, target: str, rows: list[Work], action: str, member: bool) -> Iterable[Outcome]:
        answer = self.hook.track_attributes([self.attributes_of(w, member) for w in rows])
        self.requests += 1
        self.processed += int(answer.get("attributes_processed") or 0)
        refused = refused_rows(answer, len(rows))
        for index, work in enumerate(rows):
            reason = refused.get(index)
            status = "Rejected" if reason else ("Set" if member else "Unset")
            yield (work.ident, target, action, work.uid, status, None, reason)

    def add(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        return list(self._send(target, rows, "add", member=True))

    def remove(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        return list(self._send(target, rows, "remove", member=False))
