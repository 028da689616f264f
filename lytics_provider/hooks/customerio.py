"""Hook and destination adapter for Customer.io's Track API (``POST /api/v2/batch``).

Contract (Customer.io's Journeys Track API reference, https://docs.customer.io/api/track/, and
https://docs.customer.io/journeys/invalid-api-requests; OpenAPI copy:
``api-evangelist/customer-io``, ``openapi/_original/customer-io-track-api-openapi.json``):

* Auth: HTTP Basic, **Site ID** as the user name and **API Key** as the password. Hosts:
  ``https://track.customer.io`` (US) and ``https://track-eu.customer.io`` (EU);
  ``GET /api/v1/accounts/region`` answers which region a workspace is in.
* ``POST /api/v2/batch`` ``{"batch": [{"type": "person", "identifiers": {"id"|"email": ...},
  "action": "identify", "attributes": {...}}]}``: at most 500 KB per request and 32 KB per entry;
  an identify carries at most 300 attributes, names of at most 150 bytes.
* An invalid request is ``400`` with ``{"meta": {"error": "..."}}``; a wrong Site ID / API Key
  ``401``; over the fair-use limit of 100 requests per second ``429``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from lytics_provider.hooks.rest import RestHook
from lytics_provider.hooks.rest_auth import HttpBasic
from lytics_provider.hooks.rest_errors import error_reader
from lytics_provider.pipeline.http import AuthError, PermanentServiceError
from lytics_provider.sync.act import RowLevelBatchError
from lytics_provider.sync.destination import SyncDestination
from lytics_provider.sync.plan import Outcome, Work

REGIONS = {"US": "https://track.customer.io", "EU": "https://track-eu.customer.io"}
MAX_REQUEST_BYTES = 500 * 1024
MAX_ENTRY_BYTES = 32 * 1024
MAX_ATTRIBUTES = 300
MAX_ATTRIBUTE_NAME_BYTES = 150
BATCH_PATH = "/api/v2/batch"


@error_reader
def customerio_error(body: dict[str, Any]) -> str | None:
    """The text of a Track API error body (``{"meta": {"error": ...}}`` or ``{"errors": [...]}``)."""
    meta = body.get("meta")
    if isinstance(meta, dict) and meta.get("error"):
        return str(meta["error"])
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        return "; ".join(str(e.get("message") if isinstance(e, dict) else e) for e in errors[:5])
    return None


def entry_bytes(entry: Mapping[str, Any]) -> int:
    return len(json.dumps(entry, separators=(",", ":"), default=str).encode())


def pack(entries: Sequence[dict[str, Any]], limit: int = MAX_REQUEST_BYTES) -> Iterator[list[dict[str, Any]]]:
    """Consecutive runs of ``entries`` whose ``{"batch": [...]}`` body stays within ``limit`` bytes."""
    run: list[dict[str, Any]] = []
    size = len('{"batch":[]}')
    for entry in entries:
        extra = entry_bytes(entry) + (1 if run else 0)
        if run and size + extra > limit:
            yield run
            run, size, extra = [], len('{"batch":[]}'), entry_bytes(entry)
        run.append(entry)
        size += extra
    if run:
        yield run


class CustomerIOHook(RestHook):
    """Call Customer.io's Track API with the Site ID and API Key of a ``customerio`` connection.

    Connection: Login = Site ID, Password = API Key, extra ``region`` = ``US`` (default) or ``EU``;
    Host overrides the region's Track API host.

    :param customerio_conn_id: the ``customerio`` connection (default ``customerio_default``).
    :param kwargs: :class:`~lytics_provider.hooks.rest.RestHook`'s arguments.
    """

    conn_type = "customerio"
    hook_name = "Customer.io"
    auth = HttpBasic()
    regional_hosts = REGIONS
    credentials_hint = "needs the Site ID in Login and the API Key in Password."
    error_text = staticmethod(customerio_error)
    check_path = "/api/v1/accounts/region"
    calls_per_hour = 100
    budget_window = 1.0
    budget_margin = 0.05

    def auth_fix(self) -> str:
        return "Check the Site ID (Login) and the Track API Key (Password), and the workspace's region."

    def batch(self, entries: list[dict[str, Any]]) -> None:
        """One ``POST /api/v2/batch`` (the caller keeps it within 500 KB)."""
        self.call("POST", BATCH_PATH, json={"batch": entries})


def entry_problem(entry: dict[str, Any]) -> str | None:
    """Why Customer.io would refuse one identify entry (None when it is fine)."""
    attributes = entry.get("attributes") or {}
    if len(attributes) > MAX_ATTRIBUTES:
        return f"{len(attributes)} attributes; Customer.io takes at most {MAX_ATTRIBUTES} in one identify"
    long = next((n for n in attributes if len(str(n).encode()) > MAX_ATTRIBUTE_NAME_BYTES), None)
    if long is not None:
        return f"attribute name {str(long)[:40]!r}... is longer than {MAX_ATTRIBUTE_NAME_BYTES} bytes"
    size = entry_bytes(entry)
    if size > MAX_ENTRY_BYTES:
        return f"the identify is {size} bytes; Customer.io takes at most {MAX_ENTRY_BYTES} per entry"
    return None


class CustomerIOPeopleDestination(SyncDestination):
    """Create or update a person per member ("Export Users"); exits send nothing.

    :param hook: the Customer.io hook.
    :param id_field: member field sent as ``identifiers.id`` (used when the member has a value).
    :param email_field: member field sent as ``identifiers.email`` otherwise, and as ``email``.
    :param export_fields: member fields sent as attributes under their own names.
    :param extra_attributes: Extra Attributes: Customer.io attribute name -> member field.
    :param batch_size: members per checkpoint (each goes in requests of at most 500 KB).
    :param trigger_fields: a member already sent is sent again only when one of these moved.
    """

    tracked_exit_actions = ()

    def __init__(
        self,
        hook: CustomerIOHook,
        id_field: str | None = None,
        email_field: str | None = "email",
        export_fields: Sequence[str] = (),
        extra_attributes: Mapping[str, str] | None = None,
        batch_size: int = 1000,
        trigger_fields: Sequence[str] | None = None,
    ) -> None:
        self.hook = hook
        self.id_field = id_field
        self.email_field = email_field
        self.export_fields = [f for f in export_fields if f != "_uid"]
        self.extra_attributes = dict(extra_attributes or {})
        self.batch_size = batch_size
        sent = [*self.export_fields, *self.extra_attributes.values()]
        self.trigger_fields = list(trigger_fields or sent) or None
        self.enter_kinds = ("enter", "change") if sent else ("enter",)
        self.requests = 0

    def identify(self, record: dict[str, Any]) -> tuple[str, str | None]:
        person_id = str(record.get(self.id_field) or "").strip() if self.id_field else ""
        if person_id:
            return f"id:{person_id}", None
        email = str(record.get(self.email_field) or "").strip().lower() if self.email_field else ""
        return (f"email:{email}", None) if email else ("", None)

    def invalid_reason(self, ident: str, record: dict[str, Any]) -> str | None:
        if not ident:
            return f"no person id ({self.id_field}) and no email ({self.email_field})"
        kind, _, value = ident.partition(":")
        if kind == "email" and "@" not in value:
            return f"email {value!r} is not an email address"
        return None

    def payload(self, record: dict[str, Any]) -> dict[str, Any]:
        attributes = {f: record[f] for f in self.export_fields if record.get(f) is not None}
        for name, field in self.extra_attributes.items():
            if record.get(field) is not None:
                attributes[name] = record[field]
        if self.email_field and record.get(self.email_field) and "email" not in attributes:
            attributes["email"] = record[self.email_field]
        return attributes

    def describe(self) -> dict[str, Any]:
        return {
            "identifier": "id" if self.id_field else "email",
            "extra_attributes": dict(self.extra_attributes),
        }

    def describe_after(self) -> dict[str, Any]:
        return {"customerio_requests": self.requests}

    def entry(self, work: Work) -> dict[str, Any]:
        kind, _, value = work.ident.partition(":")
        return {
            "type": "person",
            "identifiers": {kind: value},
            "action": "identify",
            "attributes": work.fields(),
        }

    def add(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        outcomes: list[Outcome] = []
        entries: list[dict[str, Any]] = []
        sending: list[Work] = []
        for work in rows:
            entry = self.entry(work)
            problem = entry_problem(entry)
            if problem:
                outcomes.append((work.ident, target, "add", work.uid, "Rejected", None, problem))
            else:
                entries.append(entry)
                sending.append(work)
        for chunk in pack(entries):
            try:
                self.hook.batch(chunk)
            except AuthError:
                raise
            except PermanentServiceError as exc:
                if exc.status == 400:  # a row Customer.io refused: bisected down to that row
                    raise RowLevelBatchError(f"Customer.io refused the identify: {exc}") from None
                raise
            self.requests += 1
        outcomes += [(w.ident, target, "add", w.uid, "Identified", None, None) for w in sending]
        return outcomes
