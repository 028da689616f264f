"""Hook for the Marketo REST API and the static-list destination adapter.

Auth: an API user's Client ID (Login) and Client Secret (Password), exchanged at
``<REST URL>/identity/oauth/token``; Host is the REST URL (the part of the REST endpoint between
``://`` and ``/rest``, e.g. ``123-ABC-456.mktorest.com``). Leads are written with
``POST /rest/v1/leads.json`` (``createOrUpdate`` on ``email``, at most 300 records a call), static
list memberships with ``POST`` / ``DELETE /rest/v1/lists/{id}/leads.json`` (at most 300 ids).
Bulk Extract jobs (``/bulk/v1/{leads|activities}/export/``): ``create.json`` with a ``filter`` of
at most 31 days, ``{id}/enqueue.json``, ``{id}/status.json`` until it is ``Completed``, then the
CSV from ``{id}/file.json``.

Errors: Marketo answers HTTP 200 with ``success: false`` and ``errors[].code``. 601 / 602 (token
invalid / expired) renew the token and send the call again once; 606 (more than 100 calls in 20
seconds) pauses every task of the connection for one window and sends again; 615 (concurrency) is
retried; 607 (daily quota), 1029 (the Bulk Extract's daily export quota, 500 MB by default, or its
queue full) and 1035 (no ``updatedAt`` filter) fail the task saying what to do (:data:`ADVICE`);
any other code fails it at once.
Every task of one connection draws on one client-side budget of 100 calls per 20 seconds (the
window widened by 5% for clock skew; extras ``calls_per_window`` and ``window_seconds``), so
606 is not expected at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

from lytics_provider.hooks.batched_lookup import lookup_in_batches
from lytics_provider.hooks.bulk_jobs import wait_for_answer
from lytics_provider.hooks.email_lists import EmailListDestination
from lytics_provider.hooks.list_lookup import list_choices
from lytics_provider.hooks.rest import JSON_HEADERS, RestHook
from lytics_provider.hooks.rest_auth import HostOAuth2ClientCredentials
from lytics_provider.sync.identifiers import normalize_email
from lytics_provider.sync.plan import Outcome, Work
from lytics_provider.sync.refs import RefStore

log = logging.getLogger(__name__)

BATCH_LIMIT = 300
CALLS_PER_WINDOW = 100
WINDOW_SECONDS = 20.0
TOKEN_CODES = frozenset({"601", "602"})
RETRIED_CODES = frozenset({"604", "606", "608", "611", "615", "713"})
ADVICE = {
    "607": "The daily API quota of connection {conn!r} is spent; it resets at midnight US Central time. "
    "Run the job again after the reset.",
    "1029": "The Bulk Extract's daily export quota (500 MB by default) of connection {conn!r} is spent, or "
    "its queue is full; it resets at midnight US Central time. Run the task again after the reset: it "
    "continues where it stopped. Marketo raises the limit on request.",
    "1035": "This Marketo subscription does not offer the updatedAt filter; set lead_filter: createdAt "
    "(updates to existing leads are then not imported) or ask Marketo support for updatedAt.",
}
"""Response-level codes that fail the task at once, and what to do about each."""
EXPORT_PENDING = ("Queued", "Processing")
ADDED, REMOVED, NOT_IN_LIST, NOT_FOUND, REJECTED = "added", "removed", "not_in_list", "not_found", "Rejected"


class MarketoApiError(Exception):
    """A response-level Marketo error that no retry here can fix."""


class MarketoHook(RestHook):
    """Talk to Marketo with the API user credentials of a ``marketo`` connection.

    Connection: Login = Client ID, Password = Client Secret, Host = REST URL; extras
    ``calls_per_window`` (default 100) and ``window_seconds`` (default 20).

    :param marketo_conn_id: the ``marketo`` connection (default ``marketo_default``).
    :param kwargs: :class:`~lytics_provider.hooks.rest.RestHook`'s arguments.
    """

    conn_type = "marketo"
    hook_name = "Marketo"
    auth = HostOAuth2ClientCredentials("/identity/oauth/token", client_auth="body")
    credentials_hint = "needs the Client ID in Login, the Client Secret in Password and the REST URL in Host."
    credentials_fix = (
        "the API user's Client ID (Login) and Client Secret (Password), and the REST URL (Host) from "
        "Admin > Web Services."
    )
    default_headers = JSON_HEADERS
    check_path = "/rest/v1/lists.json"
    check_params = {"batchSize": 1}

    calls_per_hour = CALLS_PER_WINDOW
    budget_window = WINDOW_SECONDS
    budget_stretch = 1.05
    budget_extra = "calls_per_window"
    window_extra = "window_seconds"
    rate_limited = 0
    """Rate-limit answers met so far."""

    def check_found(self, body: Any) -> str:
        return f"{len(body.get('result') or [])} static list(s) readable"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call; Marketo's ``success: false`` envelope is read as described in the module docstring."""
        renewed = False
        attempts = 0
        while True:
            attempts += 1
            body = super().call(method, path, **kwargs)
            if not isinstance(body, dict) or body.get("success", True) is not False:
                return body
            errors = body.get("errors") or [{}]
            code, message = str(errors[0].get("code") or ""), str(errors[0].get("message") or "")
            shown = f"Marketo {method} {path}: {code} {message}"
            if code in TOKEN_CODES and not renewed and self._client and self._client.refresh_auth:
                renewed = True
                log.warning("%s; renewing the access token", shown)
                self._client.refresh_auth()
                continue
            if code in RETRIED_CODES and attempts < self.retry_policy.max_attempts:
                if code == "606":
                    self.rate_limited += 1
                    if self.ledger is not None:
                        self.ledger.pause_until(self.clock() + self.budget_window_seconds())
                    else:
                        self.sleep(self.budget_window_seconds())
                else:
                    self.sleep(self.retry_policy.backoff(attempts))
                log.warning("%s; sending again", shown)
                continue
            if code in ADVICE:
                raise self.errors.permanent(f"{shown}. {ADVICE[code].format(conn=self.marketo_conn_id)}", 200)
            if code in TOKEN_CODES:
                raise self.errors.auth(f"{shown}. {self.auth_fix()}", 401)
            raise self.errors.permanent(f"{shown} (not retried: the request itself is wrong)", 200, body)

    # -- leads ---------------------------------------------------------------------------------
    def sync_leads(
        self, records: Sequence[Mapping[str, Any]], action: str = "createOrUpdate"
    ) -> list[dict[str, Any]]:
        """Create or update up to 300 leads by email; one result per record, in order."""
        if len(records) > BATCH_LIMIT:
            raise ValueError(f"at most {BATCH_LIMIT} leads per call")
        body = self.call(
            "POST",
            "/rest/v1/leads.json",
            json={"action": action, "lookupField": "email", "input": list(records)},
        )
        return list(body.get("result") or [])

    def ids_by_email(self, emails: Sequence[str]) -> dict[str, str]:
        """Lead ids of existing leads by email (300 a call)."""
        return lookup_in_batches(emails, BATCH_LIMIT, self._read_ids)

    def _read_ids(self, emails: list[str]) -> Iterator[tuple[str, str]]:
        body = self.call(
            "GET",
            "/rest/v1/leads.json",
            params={"filterType": "email", "filterValues": ",".join(emails), "fields": "id,email"},
        )
        for lead in body.get("result") or []:
            yield normalize_email(lead.get("email")), str(lead["id"])

    # -- bulk extract --------------------------------------------------------------------------
    def create_export(self, kind: str, request: Mapping[str, Any]) -> str:
        """Create a Bulk Extract job (``kind``: ``leads`` or ``activities``); its ``exportId``.

        :param kind: what is extracted, ``leads`` or ``activities``.
        :param request: the job's ``fields`` / ``filter`` / ``format``.
        """
        body = self.call("POST", f"/bulk/v1/{kind}/export/create.json", json=dict(request))
        return str(body["result"][0]["exportId"])

    def export_status(self, kind: str, export_id: str) -> dict[str, Any]:
        """The job's status answer (``status``, ``fileSize``, ``numberOfRecords``, ``errorMsg``)."""
        return dict(self.call("GET", f"/bulk/v1/{kind}/export/{export_id}/status.json")["result"][0])

    def run_export(
        self,
        kind: str,
        export_id: str,
        poll_interval: float = 5.0,
        timeout: float = 3600.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> dict[str, Any]:
        """Enqueue the job when it is still ``Created``, wait until it ends; its last status answer.

        :param kind: ``leads`` or ``activities``.
        :param export_id: the job's id.
        :param poll_interval: seconds between status reads.
        :param timeout: the longest wait, in seconds.
        :param sleep: how the wait sleeps.
        """
        if self.export_status(kind, export_id).get("status") == "Created":
            self.call("POST", f"/bulk/v1/{kind}/export/{export_id}/enqueue.json")
        answer = wait_for_answer(
            lambda: self.export_status(kind, export_id), EXPORT_PENDING, poll_interval, timeout,
            f"Marketo {kind} export {export_id}", sleep,
        )  # fmt: skip
        if answer.get("status") != "Completed":
            raise self.errors.permanent(
                f"Marketo {kind} export {export_id} ended {answer.get('status')}: {answer.get('errorMsg')}",
                200,
            )
        return answer

    def download_export(self, kind: str, export_id: str, target: Path) -> int:
        """Save a completed job's CSV to ``target`` (written whole or not at all); its bytes."""
        partial = target.with_name(f"{target.name}.part")
        size = self.get_conn().fetch(
            "GET", f"/bulk/v1/{kind}/export/{export_id}/file.json",
            lambda response: _save_bytes(response, partial), stream=True,
        )  # fmt: skip
        partial.replace(target)
        return size

    # -- static lists --------------------------------------------------------------------------
    def resolve_list(self, ref: str) -> dict[str, Any]:
        """A static list by id or exact name; ``ValueError`` naming the lists found when none matches."""
        params = {} if str(ref).isdigit() else {"name": ref}
        lists = list(self.call("GET", "/rest/v1/lists.json", params=params).get("result") or [])
        for item in lists:
            if str(item.get("id")) == str(ref) or item.get("name") == ref:
                return item
        if params:
            lists = list(self.call("GET", "/rest/v1/lists.json").get("result") or [])
        raise ValueError(f"Marketo static list {ref!r} not found; lists: {list_choices(lists) or 'none'}")

    def change_list(self, list_id: str, lead_ids: Sequence[str], add: bool) -> dict[str, dict[str, Any]]:
        """Add or remove up to 300 leads; lead id -> result (``status``, ``reasons``)."""
        if len(lead_ids) > BATCH_LIMIT:
            raise ValueError(f"at most {BATCH_LIMIT} leads per list call")
        body = self.call(
            "POST" if add else "DELETE",
            f"/rest/v1/lists/{list_id}/leads.json",
            json={"input": [{"id": int(i)} for i in lead_ids]},
        )
        return {str(r.get("id")): r for r in body.get("result") or []}


def _save_bytes(response: requests.Response, target: Path) -> int:
    """Write an answer's body to ``target``; how many bytes."""
    size = 0
    with target.open("wb") as out:
        for chunk in response.iter_content(65536):
            out.write(chunk)
            size += len(chunk)
    return size


def reasons_text(result: Mapping[str, Any]) -> str:
    return "; ".join(f"{r.get('code')} {r.get('message')}" for r in result.get("reasons") or []) or "skipped"


class MarketoListDestination(EmailListDestination):
    """Members created or updated as leads (mapped lead fields) and kept in one static list; exits
    removed from the list (``on_exit: remove``), only members the job added. Leads are never deleted.

    :param args: :class:`~lytics_provider.hooks.email_lists.EmailListDestination`'s arguments
        (``field_map``: Lytics field -> lead field).
    :param refs: the lead ids answered at add time, so an exit needs no lookup.
    """

    hook: MarketoHook | None
    default_batch_size = BATCH_LIMIT
    value_separator = ";"

    def __init__(self, *args: Any, refs: RefStore | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refs = refs

    def describe(self) -> dict[str, Any]:
        return {"static_list": self.list_id, "on_exit": self.on_exit}

    def describe_after(self) -> dict[str, Any]:
        if self.hook is None:
            return {}
        return {"marketo_calls": self.hook.calls, "rate_limited": self.hook.rate_limited}

    def add(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        """One ``createOrUpdate`` of the rows' leads, then one list add of those Marketo accepted."""
        assert self.hook is not None
        results = self.hook.sync_leads([{**w.fields(), "email": w.ident} for w in rows])
        ids: dict[str, str] = {}
        outcomes: dict[str, Outcome] = {}
        for work, result in zip(rows, results, strict=True):
            if result.get("status") == "skipped" or not result.get("id"):
                reason = f"Marketo skipped the lead: {reasons_text(result)}"
                outcomes[work.ident] = (work.ident, target, "add", work.uid, REJECTED, None, reason)
            else:
                ids[work.ident] = str(result["id"])
        if ids:
            listed = self.hook.change_list(target, sorted(set(ids.values())), add=True)
            for ident, lead_id in ids.items():
                work = next(w for w in rows if w.ident == ident)
                result = listed.get(lead_id) or {}
                if result.get("status") == "added":
                    outcomes[ident] = (ident, target, "add", work.uid, ADDED, lead_id, None)
                else:
                    reason = f"Marketo did not add lead {lead_id} to the list: {reasons_text(result)}"
                    outcomes[ident] = (ident, target, "add", work.uid, REJECTED, lead_id, reason)
            if self.refs is not None:
                self.refs.save(target, ((o[0], o[5]) for o in outcomes.values() if o[6] is None and o[5]))
        return [outcomes[w.ident] for w in rows]

    def remove(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        """Remove the rows' leads from the list (ids saved when the job added them, else by email)."""
        assert self.hook is not None
        known = self.refs.find(target, [w.ident for w in rows]) if self.refs is not None else {}
        missing = [w.ident for w in rows if w.ident not in known]
        if missing:
            known.update(self.hook.ids_by_email(missing))
        results = self.hook.change_list(target, sorted(set(known.values())), add=False) if known else {}
        outcomes: list[Outcome] = []
        for work in rows:
            lead_id = known.get(work.ident)
            status = (
                NOT_FOUND
                if lead_id is None
                else REMOVED
                if (results.get(lead_id) or {}).get("status") == "removed"
                else NOT_IN_LIST
            )
            outcomes.append((work.ident, target, "remove", work.uid, status, lead_id, None))
        return outcomes
