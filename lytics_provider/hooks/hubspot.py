"""Hook for the HubSpot CRM API (``https://api.hubapi.com``) and the audience-list adapter.

Auth: a private app's access token, sent as ``Authorization: Bearer`` (connection Password).
Contacts are written with the v3 batch endpoints (``batch/upsert`` and ``batch/read`` by
``email``, at most 100 inputs a call), list memberships with the lists v3 ``memberships/add`` and
``memberships/remove`` calls (record ids), contacts read with ``search`` (``after`` paging,
10,000 results per query) and email events with the email events API (``offset`` cursor and
``hasMore``). Error bodies are ``{"status": "error", "message", "category", "errors": [...]}``.

Rate limits: HubSpot allows a private app 100 requests per rolling 10 seconds (190 on
Professional and Enterprise accounts; connection extra ``calls_per_interval``), shared by every
app of the account. Every task of one connection draws on one client-side budget of that many
calls per interval (the window widened by 5%: a call reaches HubSpot later than it left, and a
bench run with a 2% + 50 ms margin met a 429); a 429 (``X-HubSpot-RateLimit-*`` headers,
``policyName`` ``TEN_SECONDLY_ROLLING``) pauses every task of the connection for one interval
before the call is sent again. The search endpoints have their own budget of 5 requests a second.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from lytics_provider.hooks.batched_lookup import chunks, lookup_in_batches
from lytics_provider.hooks.email_lists import NamedListDestination
from lytics_provider.hooks.rest import JSON_HEADERS, RestHook
from lytics_provider.hooks.rest_auth import Bearer
from lytics_provider.hooks.rest_errors import error_reader
from lytics_provider.hooks.rest_paging import CursorPaging, dig
from lytics_provider.pipeline.http import PermanentServiceError, parse_retry_after
from lytics_provider.sync.act import RowLevelBatchError
from lytics_provider.sync.identifiers import normalize_email
from lytics_provider.sync.plan import Outcome, Work
from lytics_provider.sync.refs import RefStore

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.hubapi.com"
BATCH_LIMIT = 100
"""Inputs per ``batch/upsert`` and ``batch/read`` call (HubSpot's limit)."""
MEMBERSHIP_LIMIT = 100_000
"""Record ids per ``memberships/add`` or ``memberships/remove`` call."""
CALLS_PER_INTERVAL = 100
INTERVAL_SECONDS = 10.0
SEARCH_CALLS_PER_SECOND = 5
SEARCH_RESULT_CAP = 10_000
CONTACT_OBJECT_TYPE = "0-1"
SUBSCRIPTION_PROPERTIES = frozenset({"hs_email_optout", "hs_marketable_status", "hs_email_bad_address"})
"""Contact properties an export never writes (it never subscribes or unsubscribes anyone)."""

ADDED, ALREADY_MEMBER, REMOVED, NOT_IN_LIST, NOT_FOUND, REJECTED = (
    "added", "already_member", "removed", "not_in_list", "not_found", "Rejected",
)  # fmt: skip


@error_reader
def hubspot_error(body: dict[str, Any]) -> str | None:
    """The text of a HubSpot error body: message, category and the first row errors."""
    parts = [str(body.get("message") or "")]
    kind = body.get("category") or body.get("errorType")
    if kind:
        parts.append(f"({kind})")
    for error in (body.get("errors") or [])[:3]:
        if isinstance(error, dict) and error.get("message"):
            parts.append(f"- {error['message']}")
    return " ".join(p for p in parts if p)[:600]


@dataclass
class MembershipResult:
    """What a memberships call answered."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


class HubspotHook(RestHook):
    """Talk to HubSpot with the private app access token of a ``hubspot`` connection.

    Connection: Password = the private app's access token, Host = API URL (optional, default
    ``https://api.hubapi.com``), extras ``calls_per_interval`` (default 100; 190 for
    Professional and Enterprise accounts) and ``interval_seconds`` (default 10).

    :param hubspot_conn_id: the ``hubspot`` connection (default ``hubspot_default``).
    :param kwargs: :class:`~lytics_provider.hooks.rest.RestHook`'s arguments.
    """

    conn_type = "hubspot"
    hook_name = "HubSpot"
    default_host = DEFAULT_API_URL
    auth = Bearer()
    credentials_hint = "needs the private app access token in Password."
    credentials_fix = (
        "the private app's access token in Password, and that the app has the "
        "crm.objects.contacts.read/write and crm.lists.read/write scopes."
    )
    default_headers = JSON_HEADERS
    paging = CursorPaging(cursor_param="after", next_key="paging.next.after", items_key="results")
    error_text = staticmethod(hubspot_error)
    check_path = "/account-info/v3/details"

    calls_per_hour = CALLS_PER_INTERVAL
    budget_window = INTERVAL_SECONDS
    budget_stretch = 1.05
    """Calls reach HubSpot later than they left: never 101 in one of its windows."""
    budget_extra = "calls_per_interval"
    window_extra = "interval_seconds"

    # -- budget ---------------------------------------------------------------------------------

    def _after_response(self, response: requests.Response) -> None:
        """A 429 pauses every task of the connection for one interval (or the ``Retry-After``)."""
        if self.ledger is None or response.status_code != 429:
            return
        headers = response.headers
        wait = parse_retry_after(headers.get("Retry-After"), self.clock())
        if wait is None:
            millis = headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
            wait = int(millis) / 1000 if millis and millis.isdigit() else self.budget_window_seconds()
        log.warning(
            "HubSpot answered 429 (%s); pausing calls for %.1fs", headers.get("X-HubSpot-RateLimit-Max"), wait
        )
        self.ledger.pause_until(self.clock() + wait)

    def _search_budget(self) -> None:
        self.side_budget("search", "token", SEARCH_CALLS_PER_SECOND, 1.05)

    def check_found(self, body: Any) -> str:
        """The account's details (any valid token may read them)."""
        return f"HubSpot account {body.get('portalId')}"

    # -- contacts -------------------------------------------------------------------------------
    def upsert_contacts(self, contacts: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, str]:
        """Create or update up to 100 contacts by email in one ``batch/upsert``; email -> record id."""
        if len(contacts) > BATCH_LIMIT:
            raise ValueError(f"at most {BATCH_LIMIT} contacts per batch upsert")
        inputs = [{"idProperty": "email", "id": email, "properties": props} for email, props in contacts]
        body = self.call("POST", "/crm/v3/objects/contacts/batch/upsert", json={"inputs": inputs})
        found: dict[str, str] = {}
        for result in body.get("results") or []:
            email = normalize_email((result.get("properties") or {}).get("email"))
            if email:
                found[email] = str(result["id"])
        return found

    def ids_by_email(self, emails: Sequence[str]) -> dict[str, str]:
        """Record ids of existing contacts by email (``batch/read``, 100 a call); unknown ones are absent."""
        return lookup_in_batches(emails, BATCH_LIMIT, self._read_ids)

    def _read_ids(self, emails: list[str]) -> Iterator[tuple[str, str]]:
        body = self.call(
            "POST",
            "/crm/v3/objects/contacts/batch/read",
            json={"idProperty": "email", "properties": ["email"], "inputs": [{"id": e} for e in emails]},
        )
        for result in body.get("results") or []:
            email = normalize_email((result.get("properties") or {}).get("email"))
            if email:
                yield email, str(result["id"])

    def iter_modified_contacts(
        self, since_ms: int, until_ms: int, properties: Sequence[str], page_size: int = 200
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of contacts with ``since_ms <= lastmodifieddate < until_ms``, oldest first.

        A query stops at 10,000 results; the read then starts a new query from the last page's
        modification time (contacts modified at that same millisecond are read again).
        """
        low = since_ms
        while True:
            after = 0
            while True:
                self._search_budget()
                body = self.call(
                    "POST",
                    "/crm/v3/objects/contacts/search",
                    json={
                        "filterGroups": [
                            {
                                "filters": [
                                    {
                                        "propertyName": "lastmodifieddate",
                                        "operator": "GTE",
                                        "value": str(low),
                                    },
                                    {
                                        "propertyName": "lastmodifieddate",
                                        "operator": "LT",
                                        "value": str(until_ms),
                                    },
                                ]
                            }
                        ],
                        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
                        "properties": list(properties),
                        "limit": page_size,
                        "after": str(after),
                    },
                )
                results = list(body.get("results") or [])
                if results:
                    yield results
                following = dig(body, "paging.next.after")
                if not following:
                    return
                after = int(following)
                if after + page_size > SEARCH_RESULT_CAP:
                    newest = int(results[-1]["properties"]["lastmodifieddate"])
                    if newest <= low:
                        raise ValueError(
                            f"more than {SEARCH_RESULT_CAP} HubSpot contacts were modified at {low} ms; "
                            "the search API cannot page past them"
                        )
                    low = newest
                    break

    # -- lists ----------------------------------------------------------------------------------
    def find_list(self, name: str) -> dict[str, Any] | None:
        """The contact list named ``name``, or None."""
        quoted = requests.utils.quote(name, safe="")
        try:
            body = self.call("GET", f"/crm/v3/lists/object-type-id/{CONTACT_OBJECT_TYPE}/name/{quoted}")
        except PermanentServiceError as exc:
            if exc.status == 404:
                return None
            raise
        return dict(body.get("list") or {})

    def create_list(self, name: str) -> dict[str, Any]:
        """Create a MANUAL contact list."""
        body = self.call(
            "POST",
            "/crm/v3/lists",
            json={"name": name, "objectTypeId": CONTACT_OBJECT_TYPE, "processingType": "MANUAL"},
        )
        return dict(body.get("list") or {})

    def change_memberships(self, list_id: str, record_ids: Sequence[str], verb: str) -> MembershipResult:
        """``memberships/add`` or ``memberships/remove`` (``verb``), up to 100,000 ids a call."""
        result = MembershipResult()
        for chunk in chunks(record_ids, MEMBERSHIP_LIMIT):
            body = self.call("PUT", f"/crm/v3/lists/{list_id}/memberships/{verb}", json=chunk)
            result.added += [str(i) for i in body.get("recordsIdsAdded") or body.get("recordIdsAdded") or []]
            result.removed += [str(i) for i in body.get("recordIdsRemoved") or []]
            result.missing += [str(i) for i in body.get("recordIdsMissing") or []]
        return result

    def iter_list_members(self, list_id: str) -> Iterator[dict[str, Any]]:
        """``{"recordId", "membershipTimestamp"}`` of every member."""
        return self.paginate(f"/crm/v3/lists/{list_id}/memberships", {"limit": 250})

    # -- email events ---------------------------------------------------------------------------
    def iter_email_event_pages(
        self, start_ms: int, end_ms: int, offset: str | None = None, page_size: int = 1000
    ) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
        """Pages of email events with ``start_ms <= created < end_ms``: ``(events, next offset)``;
        the next offset is None after the last page. ``offset`` resumes a read."""
        while True:
            params: dict[str, Any] = {"startTimestamp": start_ms, "endTimestamp": end_ms, "limit": page_size}
            if offset:
                params["offset"] = offset
            body = self.call("GET", "/email/public/v1/events", params=params)
            following = str(body.get("offset") or "") if body.get("hasMore") else None
            if following is not None and following == offset:
                raise ValueError("HubSpot email events: the offset cursor did not advance")
            yield list(body.get("events") or []), following
            if following is None:
                return
            offset = following


class HubspotListDestination(NamedListDestination):
    """Members upserted as contacts (their mapped properties) and added to one list; exits removed
    from the list when ``on_exit`` is ``remove`` (only members the job added).

    :param args: :class:`~lytics_provider.hooks.email_lists.NamedListDestination`'s arguments.
    :param dry_run: plan only.
    :param refs: the record ids answered at add time, so an exit needs no lookup.
    """

    hook: HubspotHook
    value_separator = ";"
    item_text = staticmethod(str)

    def __init__(
        self, *args: Any, dry_run: bool = False, refs: RefStore | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.dry_run = dry_run
        self.refs = refs

    # -- planning ------------------------------------------------------------------------------
    def describe_after(self) -> dict[str, Any]:
        return {"hubspot_calls": self.hook.calls}

    # -- acting --------------------------------------------------------------------------------
    def add(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        """Upsert the rows' contacts 100 at a time, then add them to the list in one call."""
        ids: dict[str, str] = {}
        rejected: dict[str, str] = {}
        for chunk in chunks(rows, BATCH_LIMIT):
            self._upsert(chunk, ids, rejected)
        result = self.hook.change_memberships(target, sorted(set(ids.values())), "add")
        added, missing = set(result.added), set(result.missing)
        outcomes: list[Outcome] = []
        for work in rows:
            cid = ids.get(work.ident)
            if work.ident in rejected or cid is None:
                reason = rejected.get(work.ident) or "HubSpot returned no contact for this email"
                outcomes.append((work.ident, target, "add", work.uid, REJECTED, None, reason))
            elif cid in missing:
                reason = f"HubSpot contact {cid} is missing from the list call"
                outcomes.append((work.ident, target, "add", work.uid, REJECTED, cid, reason))
            else:
                status = ADDED if cid in added else ALREADY_MEMBER
                outcomes.append((work.ident, target, "add", work.uid, status, cid, None))
        if self.refs is not None:
            self.refs.save(target, ((o[0], o[5]) for o in outcomes if o[6] is None and o[5]))
        return outcomes

    def _upsert(self, rows: list[Work], ids: dict[str, str], rejected: dict[str, str]) -> None:
        """Upsert one chunk; contacts a 400 names are rejected and the rest sent again."""
        contacts = {w.ident: w.fields() for w in rows}
        while contacts:
            try:
                ids.update(self.hook.upsert_contacts(list(contacts.items())))
                return
            except PermanentServiceError as exc:
                if exc.status != 400:
                    raise
                named = _rejected_emails(exc.body) & set(contacts)
                if not named and len(contacts) > 1:
                    raise RowLevelBatchError(str(exc)) from None
                for email in named or set(contacts):
                    rejected[email] = f"HubSpot refused the contact: {hubspot_error_text(exc.body, email)}"
                    contacts.pop(email)

    def remove(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        """Remove the rows' contacts from the list.

        Record ids come from the member's ``id_field``, else from the ids saved when the job added
        the member, else from a lookup by email; an id HubSpot reports missing (a merged or deleted
        record) is looked up by email once more.
        """
        known = {w.ident: w.ref for w in rows if w.ref}
        if self.refs is not None:
            known.update(self.refs.find(target, [w.ident for w in rows if w.ident not in known]))
        lookup = [w.ident for w in rows if w.ident not in known]
        if lookup:
            known.update(self.hook.ids_by_email(lookup))
        result = self.hook.change_memberships(target, sorted(set(known.values())), "remove")
        removed = set(result.removed)
        stale = [ident for ident, cid in known.items() if cid in set(result.missing)]
        if stale:
            if self.refs is not None:
                self.refs.forget(target, stale)
            fresh = self.hook.ids_by_email(stale)
            for ident in stale:
                known.pop(ident, None)
            known.update(fresh)
            if fresh:
                removed.update(
                    self.hook.change_memberships(target, sorted(set(fresh.values())), "remove").removed
                )
        outcomes: list[Outcome] = []
        for work in rows:
            cid = known.get(work.ident)
            status = NOT_FOUND if cid is None else REMOVED if cid in removed else NOT_IN_LIST
            outcomes.append((work.ident, target, "remove", work.uid, status, cid, None))
        return outcomes


def _rejected_emails(body: Any) -> set[str]:
    """Emails a 400 ``VALIDATION_ERROR`` body names in ``errors[].context.id``."""
    found: set[str] = set()
    if not isinstance(body, dict):
        return found
    for error in body.get("errors") or []:
        context = error.get("context") if isinstance(error, dict) else None
        for value in (context or {}).get("id") or []:
            found.add(normalize_email(value))
    return found


def hubspot_error_text(body: Any, email: str) -> str:
    """The message of the error naming ``email`` in a 400 body."""
    for error in (body or {}).get("errors") or []:
        ids = [normalize_email(v) for v in ((error.get("context") or {}).get("id") or [])]
        if email in ids:
            return str(error.get("message") or error.get("code") or "invalid")
    return str((body or {}).get("message") or "invalid")
