"""Hook for the SendGrid v3 Marketing Campaigns API (``https://api.sendgrid.com``), and the
audience-sync adapter of "Export Audiences".

Auth: ``Authorization: Bearer <API key>``. Errors are ``{"errors": [{"field", "message"}]}``.
Rate limits are per endpoint and signalled by ``429`` with ``X-RateLimit-Reset`` (epoch seconds):
the reset pauses every task on the connection (the shared call ledger) before the call is retried.
Contacts are upserted with ``PUT /v3/marketing/contacts`` (at most 30,000 contacts or 6 MB per
request), an asynchronous job polled at ``GET /v3/marketing/contacts/imports/{job_id}``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lytics_provider.hooks.bulk_jobs import PlannedJobs, wait_for_answer
from lytics_provider.hooks.list_lookup import list_choices
from lytics_provider.hooks.rest import JSON_HEADERS, RestHook
from lytics_provider.hooks.rest_auth import Bearer
from lytics_provider.hooks.rest_errors import error_reader
from lytics_provider.pipeline.http import HttpClient, PermanentServiceError, ServiceError
from lytics_provider.pipeline.ratelimit import CallLedger, ledger_key, ledger_path
from lytics_provider.sync.act import RowLevelBatchError
from lytics_provider.sync.destination import SyncDestination
from lytics_provider.sync.email_list import EmailListMembers
from lytics_provider.sync.identifiers import lookup_field, scalar_text
from lytics_provider.sync.plan import Outcome, Work

MAX_CONTACTS = 30_000
MAX_BYTES = 6 * 1024 * 1024
SEGMENTS_FIELD = "lytics_segments"
PAUSE_ONLY_BUDGET = 1_000_000_000
"""The ledger of a SendGrid connection carries the server's pauses only (no client-side budget)."""


@error_reader
def sendgrid_error(body: dict[str, Any]) -> str | None:
    """The messages of a SendGrid error body (``{"errors": [{"field", "message"}]}``)."""
    found = body.get("errors")
    if isinstance(found, list) and found:
        return "; ".join(
            f"{e.get('field')}: {e.get('message')}" if e.get("field") else str(e.get("message"))
            for e in found
        )
    return None


class SendGridHook(RestHook):
    """Talk to SendGrid with the API key of a ``sendgrid`` connection (Password; Host optional).

    :param sendgrid_conn_id: the ``sendgrid`` connection (default ``sendgrid_default``).
    """

    conn_type = "sendgrid"
    hook_name = "SendGrid"
    default_host = "https://api.sendgrid.com"
    auth = Bearer()
    credentials_hint = "needs the SendGrid API key in the API key (Password) field."
    credentials_fix = (
        "a SendGrid API key with Marketing (marketing.read, marketing.write) access in the API key field."
    )
    default_headers = JSON_HEADERS
    reset_header = "X-RateLimit-Reset"
    error_text = staticmethod(sendgrid_error)
    check_path = "/v3/scopes"

    downloads = 0

    def get_conn(self) -> HttpClient:
        if self._client is None and self.ledger is None:
            key = self.get_connection(self.conn_id).password or ""
            identity = hashlib.sha256(key.encode()).hexdigest()[:16]
            self.ledger = CallLedger(
                ledger_path(ledger_key(self.conn_id, identity)),
                limit=PAUSE_ONLY_BUDGET,
                max_wait=self.max_budget_wait,
                clock=self.clock,
                sleep=self.sleep,
            )
        return super().get_conn()

    def check_found(self, body: Any) -> str:
        """The API key's scopes."""
        return f"{len(body.get('scopes') or [])} scopes on this API key"

    # -- fields, segments, lists ---------------------------------------------------------------
    def custom_fields(self) -> dict[str, str]:
        """Custom field name -> id."""
        body = self.call("GET", "/v3/marketing/field_definitions")
        return {str(f["name"]): str(f["id"]) for f in body.get("custom_fields") or []}

    def create_field(self, name: str, field_type: str = "Text") -> str:
        """Create a custom field; its id."""
        body = self.call(
            "POST", "/v3/marketing/field_definitions", json={"name": name, "field_type": field_type}
        )
        return str(body["id"])

    def segments(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/v3/marketing/segments/2.0").get("results") or [])

    def create_segment(self, name: str, query_dsl: str, parent_list_ids: list[str]) -> dict[str, Any]:
        body = {"name": name, "query_dsl": query_dsl}
        if parent_list_ids:
            body["parent_list_ids"] = parent_list_ids  # type: ignore[assignment]
        return dict(self.call("POST", "/v3/marketing/segments/2.0", json=body))

    def update_segment(self, segment_id: str, query_dsl: str) -> None:
        self.call("PATCH", f"/v3/marketing/segments/2.0/{segment_id}", json={"query_dsl": query_dsl})

    def resolve_list(self, list_ref: str) -> dict[str, Any]:
        """A list by id or exact name; ValueError naming the lists there are when none matches."""
        lists = list(self.call("GET", "/v3/marketing/lists", params={"page_size": 1000}).get("result") or [])
        for item in lists:
            if list_ref in (str(item.get("id")), str(item.get("name"))):
                return item
        raise ValueError(
            f"SendGrid list {list_ref!r} not found; set list to one of: {list_choices(lists) or 'none'}"
        )

    # -- contacts ------------------------------------------------------------------------------
    def upsert_contacts(self, contacts: list[dict[str, Any]], list_ids: list[str]) -> str:
        """``PUT /v3/marketing/contacts``; the job id."""
        body: dict[str, Any] = {"contacts": contacts}
        if list_ids:
            body["list_ids"] = list_ids
        return str(self.call("PUT", "/v3/marketing/contacts", json=body)["job_id"])

    def wait_for_job(
        self, job_id: str, poll_interval: float, timeout: float, sleep: Callable[[float], None] = time.sleep
    ) -> dict[str, Any]:
        """Poll an upsert job until it is no longer pending; its last status."""
        return wait_for_answer(
            lambda: self.call("GET", f"/v3/marketing/contacts/imports/{job_id}"),
            ("pending",),
            poll_interval,
            timeout,
            f"SendGrid job {job_id}",
            sleep,
        )

    def start_export(self, list_ids: list[str]) -> str:
        """``POST /v3/marketing/contacts/exports`` (JSON lines); the export id."""
        body: dict[str, Any] = {"file_type": "json"}
        if list_ids:
            body["list_ids"] = list_ids
        return str(self.call("POST", "/v3/marketing/contacts/exports", json=body)["id"])

    def wait_for_export(
        self,
        export_id: str,
        poll_interval: float,
        timeout: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> list[str]:
        """Poll an export until it is ready; its file URLs."""
        last = wait_for_answer(
            lambda: self.call("GET", f"/v3/marketing/contacts/exports/{export_id}"),
            ("pending",),
            poll_interval,
            timeout,
            f"SendGrid export {export_id}",
            sleep,
        )
        status = str(last.get("status"))
        if status != "ready":
            raise ServiceError(f"SendGrid export {export_id} ended {status!r}: {last.get('message') or ''}")
        return [str(u) for u in last.get("urls") or []]

    def download(self, url: str, path: Path) -> None:
        """Fetch a signed export URL (without the API key) to ``path``."""
        client = HttpClient(
            base_url=url, policy=self.get_conn().policy, context=f"connection {self.conn_id!r}"
        )
        try:
            path.write_bytes(client.request("GET", url).content)
        finally:
            self.downloads += client.calls
            client.close()


# -- the audience-sync adapter -----------------------------------------------------------------
def segment_query(field_names: list[str], audience_id: str) -> str:
    """The segment's query: any of the ``lytics_segments`` fields holds the audience id."""
    terms = " OR ".join(f"{name} LIKE '%{audience_id}%'" for name in field_names)
    return f"SELECT contact_id, updated_at FROM contact_data WHERE {terms}"


def field_chunks(ids: list[str], max_chars: int) -> list[str]:
    """Comma-separated values of at most ``max_chars`` each (one per ``lytics_segments`` field)."""
    chunks: list[str] = []
    current = ""
    for one in ids:
        joined = f"{current},{one}" if current else one
        if current and len(joined) > max_chars:
            chunks.append(current)
            joined = one
        current = joined
    return [*chunks, current] if current else chunks or [""]


def stale_field(error: str) -> bool:
    """Whether an upsert's 400 says a contact's custom field id does not exist."""
    return ".custom_fields" in error and "does not exist" in error


class SendGridSegmentDestination(EmailListMembers, PlannedJobs, SyncDestination):
    """Members as SendGrid contacts whose ``lytics_segments`` lists their Lytics audience ids.

    Enter (or a change of the exported fields): the contact is upserted with ``lytics_segments``
    (overflow ``lytics_segments_1``, ...) set to the ids of the Lytics audiences the member is in
    (``segments_field`` mapped to ids) including this one, so it matches the audience's SendGrid
    segment. Exit: the contact is upserted with this audience's id taken out (only contacts this
    job added); it drops out of the segment and stays in the account and on its lists.

    :param hook: the SendGrid hook.
    :param audience_id: the Lytics audience's id (what the segment matches).
    :param field_ids: ``lytics_segments`` field name -> id (the first field must exist).
    :param slug_ids: Lytics audience slug -> id (to map ``segments_field``).
    :param add_field: creates an overflow field and returns its id (the segment is updated).
    :param custom_ids: every custom field's name -> id (export fields that are custom fields).
    :param refresh: looks the fields up again when an upsert answers that a custom field id no
        longer exists (ids kept from an earlier run); returns the ``lytics_segments`` fields and
        every custom field. The upsert is then rebuilt with the new ids and sent once more.
    :param wait: ``poll_interval``, ``timeout`` and ``sleep`` of an upsert job's wait
        (:class:`~lytics_provider.hooks.bulk_jobs.PlannedJobs`).
    """

    enter_kinds = ("enter", "change")
    tracked_exit_actions = ("remove",)
    act_kinds = ("add", "remove")
    id_field: str | None = None
    """Contacts are keyed by email alone."""
    targets = SyncDestination.targets
    """One target: the segment is the Lytics audience's, not a list's."""

    def __init__(
        self,
        hook: SendGridHook,
        audience_id: str,
        field_ids: dict[str, str],
        slug_ids: dict[str, str],
        add_field: Callable[[str], str],
        *,
        list_ids: list[str] | None = None,
        custom_ids: dict[str, str] | None = None,
        refresh: Callable[[], tuple[dict[str, str], dict[str, str]]] | None = None,
        email_field: str = "email",
        segments_field: str = "segments",
        export_fields: dict[str, str] | None = None,
        max_field_chars: int = 1000,
        batch_size: int = MAX_CONTACTS,
        **wait: Any,
    ) -> None:
        super().__init__(**wait)
        self.hook = hook
        self.audience_id = audience_id
        self.field_ids = dict(field_ids)
        self.slug_ids = slug_ids
        self.add_field = add_field
        self.list_ids = list_ids or []
        # enters and exits share an upsert unless a list is set (its list_ids would add the exits)
        self.mixed_kinds = () if self.list_ids else ("add", "remove")
        self.custom_ids = custom_ids or {}
        self.refresh = refresh
        self.email_field = email_field
        self.segments_field = segments_field
        self.export_fields = (
            export_fields
            if export_fields is not None
            else {"first_name": "first_name", "last_name": "last_name"}
        )
        self.trigger_fields = [email_field, segments_field, *self.export_fields]
        self.max_field_chars = max_field_chars
        self.batch_size = batch_size

    # planning
    def exit_action(self) -> str:
        return "remove"

    def payload_actions(self) -> tuple[str, ...]:
        return ("add", "remove")

    def payload(self, record: dict[str, Any]) -> dict[str, Any]:
        memberships = lookup_field(record, self.segments_field) or []
        if isinstance(memberships, str):
            memberships = [memberships]
        ids = sorted({self.slug_ids.get(str(s), str(s)) for s in memberships if s} - {self.audience_id})
        fields = {}
        for source, target in self.export_fields.items():
            value = scalar_text(lookup_field(record, source)).strip()
            if value:
                fields[target] = value
        return {"fields": fields, "audiences": ids}

    def describe(self) -> dict[str, Any]:
        return {"audience_id": self.audience_id, "fields": sorted(self.field_ids), "list_ids": self.list_ids}

    def describe_after(self) -> dict[str, Any]:
        return {"jobs": self.jobs, "sendgrid_calls": self.hook.calls}

    # acting
    def add(self, target: str, rows: list[Work]) -> list[Outcome]:
        return self._upsert(target, [("add", row) for row in rows])

    def remove(self, target: str, rows: list[Work]) -> list[Outcome]:
        return self._upsert(target, [("remove", row) for row in rows])

    def send_mixed(self, target: str, rows: list[tuple[str, Work]]) -> list[Outcome]:
        """Enters and exits in one upsert (without a list to add them to: exits must not be added)."""
        return self._upsert(target, rows)

    def _contact(self, row: Work, member: bool) -> dict[str, Any]:
        payload = row.fields()
        ids = sorted({*payload.get("audiences", []), *([self.audience_id] if member else [])})
        chunks = field_chunks(ids, self.max_field_chars)
        names = [SEGMENTS_FIELD] + [f"{SEGMENTS_FIELD}_{n}" for n in range(1, len(chunks))]
        for name in names:
            if name not in self.field_ids:
                self.field_ids[name] = self.add_field(name)
        custom = {fid: "" for name, fid in self.field_ids.items()}  # clears overflow fields no longer used
        custom.update({self.field_ids[name]: value for name, value in zip(names, chunks, strict=True)})
        reserved = {}
        for name, value in payload.get("fields", {}).items():
            if name in self.custom_ids:
                custom[self.custom_ids[name]] = value
            else:
                reserved[name] = value
        return {"email": row.ident, **reserved, "custom_fields": custom}

    def _start(self, rows: list[tuple[str, Work]], contacts: list[dict[str, Any]], adds: bool) -> str:
        """Start the upsert job of ``rows`` (added to the lists when any is an enter); its id.

        A custom field id SendGrid answers does not exist (kept from an earlier run, deleted since)
        is looked up again with ``refresh`` and the upsert rebuilt and sent once more.
        """
        try:
            return self.hook.upsert_contacts(contacts, self.list_ids if adds else [])
        except PermanentServiceError as exc:
            if exc.status == 400 and self.refresh is not None and stale_field(str(exc)):
                self.field_ids, self.custom_ids = self.refresh()
                self.refresh = None
                return self._start(rows, [self._contact(row, kind == "add") for kind, row in rows], adds)
            if exc.status == 400 and "contacts[" in str(exc):
                raise RowLevelBatchError(str(exc).split(": 400 ", 1)[-1]) from None
            raise

    def _upsert(self, target: str, rows: list[tuple[str, Work]]) -> list[Outcome]:
        assert self.plan is not None, "act() keeps the plan"
        step = f"sendgrid_job:{target}:{rows[0][1].seq}:{rows[-1][1].seq}"
        adds = any(kind == "add" for kind, _ in rows)
        contacts: list[dict[str, Any]] = []
        if self.plan.step(step) is None:
            contacts = [self._contact(row, kind == "add") for kind, row in rows]
            if len(json.dumps({"contacts": contacts, "list_ids": self.list_ids})) > MAX_BYTES:
                if len(rows) == 1:
                    kind, row = rows[0]
                    reason = "the contact is larger than the 6 MB request limit"
                    return [(row.ident, target, kind, row.uid, "Rejected", None, reason)]
                middle = len(rows) // 2
                return [*self._upsert(target, rows[:middle]), *self._upsert(target, rows[middle:])]
        job_id = self.planned_job(step, lambda: self._start(rows, contacts, adds))
        status = self.hook.wait_for_job(job_id, self.poll_interval, self.timeout, self.sleep)
        if status.get("status") != "completed":
            raise ServiceError(f"SendGrid upsert job {job_id} ended {status.get('status')!r}")
        results = status.get("results") or {}
        detail = f"job {job_id}" + (
            f", {results.get('errored_count')} errored" if results.get("errored_count") else ""
        )
        return [
            (
                row.ident,
                target,
                kind,
                row.uid,
                "Upserted" if kind == "add" else "SegmentRemoved",
                detail,
                None,
            )
            for kind, row in rows
        ]
