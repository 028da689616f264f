"""Hook for the Brevo API v3 and the list destination adapter.

Auth: the account's API key in the ``api-key`` header (connection Password). Contacts are written
with ``POST /v3/contacts/import`` (``jsonBody`` with the mapped attributes, ``listIds``, existing
contacts updated and never blanked; the body at most 10 MB, so at most 5,000 contacts a call here)
and removed from a list with ``POST /v3/contacts/lists/{id}/contacts/remove`` (150 emails a call).

Reads (Import Users & Activity) are ``limit``/``offset`` pages that end at a page shorter than
asked: a list's contacts modified since a date-time (``GET /v3/contacts/lists/{id}/contacts``,
``modifiedSince``, 500 a page, oldest first), and the transactional email and SMS events of a date
range of at most 90 days (``GET /v3/smtp/statistics/events``, 5,000 a page;
``GET /v3/transactionalSMS/statistics/events``, 100 a page); Brevo allows these statistics
endpoints 300 (``/v3/smtp``) and 100 calls an hour, and a 429 waits for the reset as below.

Rate limits: the ``/v3/contacts`` endpoints allow 10 requests a second. Every task of one
connection draws on one client-side budget of that many calls per second (widened by 5% for clock
skew; extra ``calls_per_second``); a 429 pauses every task of the connection until
``x-sib-ratelimit-reset`` (seconds) has passed, then the call is sent again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import requests

from lytics_provider.hooks.batched_lookup import chunks
from lytics_provider.hooks.email_lists import EmailListDestination
from lytics_provider.hooks.rest import JSON_HEADERS, RestHook
from lytics_provider.hooks.rest_auth import HeaderToken
from lytics_provider.hooks.rest_errors import error_reader
from lytics_provider.hooks.rest_paging import OffsetPaging, items_of
from lytics_provider.sync.identifiers import normalize_email
from lytics_provider.sync.plan import Outcome, Work

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.brevo.com"
IMPORT_LIMIT = 5000
REMOVE_LIMIT = 150
CALLS_PER_SECOND = 10
CONTACTS_PAGE = 500
EMAIL_EVENTS_PAGE = 5000
SMS_EVENTS_PAGE = 100
EVENT_RANGE_DAYS = 90
EMAIL_EVENTS = "/v3/smtp/statistics/events"
SMS_EVENTS = "/v3/transactionalSMS/statistics/events"
IMPORTED, REMOVED, NOT_IN_LIST, REJECTED = "imported", "removed", "not_in_list", "Rejected"


@error_reader
def brevo_error(body: dict[str, Any]) -> str | None:
    """The text of a Brevo error body (``{"code", "message"}``)."""
    return f"{body.get('message') or ''} ({body.get('code')})".strip()


class BrevoHook(RestHook):
    """Talk to Brevo with the API key of a ``brevo`` connection.

    Connection: Password = API key, Host = API URL (optional, default ``https://api.brevo.com``),
    extra ``calls_per_second`` (default 10).

    :param brevo_conn_id: the ``brevo`` connection (default ``brevo_default``).
    :param kwargs: :class:`~lytics_provider.hooks.rest.RestHook`'s arguments.
    """

    conn_type = "brevo"
    hook_name = "Brevo"
    default_host = DEFAULT_API_URL
    auth = HeaderToken("api-key")
    credentials_hint = "needs the Brevo API key in Password."
    credentials_fix = "the Brevo API key (SMTP & API > API Keys) in Password."
    default_headers = JSON_HEADERS
    paging = OffsetPaging(page_size=50)
    error_text = staticmethod(brevo_error)
    check_path = "/v3/account"

    calls_per_hour = CALLS_PER_SECOND
    budget_window = 1.0
    budget_stretch = 1.05
    budget_extra = "calls_per_second"
    window_extra = ""
    rate_limited = 0
    """429 answers met so far."""

    def _after_response(self, response: requests.Response) -> None:
        """A 429 pauses every task of the connection until ``x-sib-ratelimit-reset`` has passed."""
        if response.status_code != 429:
            return
        self.rate_limited += 1
        reset = response.headers.get("x-sib-ratelimit-reset") or "1"
        wait = float(reset) if reset.replace(".", "", 1).isdigit() else 1.0
        log.warning("Brevo answered 429; pausing calls for %.1fs", wait)
        if self.ledger is not None:
            self.ledger.pause_until(self.clock() + wait)

    def check_found(self, body: Any) -> str:
        return f"account {body.get('companyName') or body.get('email')}"

    def resolve_list(self, ref: str) -> dict[str, Any]:
        """A list by id or exact name; ``ValueError`` naming the lists when none matches."""
        lists = list(self.paginate("/v3/contacts/lists", items_key="lists", total_key="count"))
        for item in lists:
            if str(item.get("id")) == str(ref) or item.get("name") == ref:
                return item
        shown = ", ".join(f"{i.get('id')} ({i.get('name')})" for i in lists[:20]) or "none"
        raise ValueError(f"Brevo list {ref!r} not found; lists: {shown}")

    def iter_offset_pages(
        self, path: str, params: Mapping[str, Any], items_key: str, page_size: int, offset: int = 0
    ) -> Iterator[tuple[list[dict[str, Any]], int | None]]:
        """Pages of ``path`` from ``offset``: ``(items, next offset)``, the next offset None after the
        last page (one shorter than ``page_size``).

        :param path: the collection's path.
        :param params: its filters.
        :param items_key: the body's key of the page's items.
        :param page_size: the ``limit`` asked (the endpoint's largest page).
        :param offset: where to start (a saved next offset resumes a read).
        """
        while True:
            body = self.call("GET", path, params={**params, "limit": page_size, "offset": offset})
            items = items_of(body, items_key)
            following = offset + len(items) if len(items) >= page_size else None
            yield items, following
            if following is None:
                return
            offset = following

    def list_contact_pages(
        self, list_id: int, modified_since: str, offset: int = 0
    ) -> Iterator[tuple[list[dict[str, Any]], int | None]]:
        """Pages of a list's contacts modified after a date-time, oldest first.

        :param list_id: the list's id.
        :param modified_since: the ISO date-time (UTC) the contacts were modified after.
        :param offset: where to start; see :meth:`iter_offset_pages`.
        """
        params = {"modifiedSince": modified_since, "sort": "asc"}
        path = f"/v3/contacts/lists/{int(list_id)}/contacts"
        return self.iter_offset_pages(path, params, "contacts", CONTACTS_PAGE, offset)

    def event_pages(
        self, path: str, start: str, end: str, offset: int = 0
    ) -> Iterator[tuple[list[dict[str, Any]], int | None]]:
        """Pages of transactional events of a date range, oldest first.

        :param path: :data:`EMAIL_EVENTS` or :data:`SMS_EVENTS`.
        :param start: the first day (YYYY-MM-DD).
        :param end: the last day, included (at most 90 days after ``start``).
        :param offset: where to start; see :meth:`iter_offset_pages`.
        """
        size = EMAIL_EVENTS_PAGE if path == EMAIL_EVENTS else SMS_EVENTS_PAGE
        params = {"startDate": start, "endDate": end, "sort": "asc"}
        return self.iter_offset_pages(path, params, "events", size, offset)

    def import_contacts(self, list_id: int, contacts: Sequence[Mapping[str, Any]]) -> int:
        """Import up to 5,000 contacts into a list (existing ones updated, empty values ignored)."""
        if len(contacts) > IMPORT_LIMIT:
            raise ValueError(f"at most {IMPORT_LIMIT} contacts per import")
        body = self.call(
            "POST",
            "/v3/contacts/import",
            json={
                "jsonBody": list(contacts),
                "listIds": [int(list_id)],
                "updateExistingContacts": True,
                "emptyContactsAttributes": False,
                "disableNotification": True,
            },
        )
        return int(body.get("processId") or 0)

    def remove_from_list(self, list_id: int, emails: Sequence[str]) -> set[str]:
        """Remove up to 150 emails from a list; the emails Brevo removed."""
        if len(emails) > REMOVE_LIMIT:
            raise ValueError(f"at most {REMOVE_LIMIT} emails per removal")
        body = self.call(
            "POST", f"/v3/contacts/lists/{int(list_id)}/contacts/remove", json={"emails": list(emails)}
        )
        return {normalize_email(e) for e in (body.get("contacts") or {}).get("success") or []}


class BrevoListDestination(EmailListDestination):
    """Members imported as contacts of one list (mapped attributes); exits removed from the list
    (``on_exit: remove``), only members the job added. Contacts are never deleted or blocklisted.

    :param args: :class:`~lytics_provider.hooks.email_lists.EmailListDestination`'s arguments
        (``field_map``: Lytics field -> contact attribute).
    """

    hook: BrevoHook | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.processes: list[int] = []

    def describe(self) -> dict[str, Any]:
        return {"list_id": self.list_id, "on_exit": self.on_exit}

    def describe_after(self) -> dict[str, Any]:
        if self.hook is None:
            return {}
        return {
            "brevo_calls": self.hook.calls,
            "rate_limited": self.hook.rate_limited,
            "imports": self.processes,
        }

    def add(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        """One import of the batch into the list; Brevo's 202 acknowledges the batch."""
        assert self.hook is not None
        for chunk in chunks(rows, IMPORT_LIMIT):
            contacts = [{"email": w.ident, "attributes": w.fields()} for w in chunk]
            self.processes.append(self.hook.import_contacts(int(target), contacts))
        return [(w.ident, target, "add", w.uid, IMPORTED, None, None) for w in rows]

    def remove(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        """Remove the rows' emails from the list, 150 a call."""
        assert self.hook is not None
        removed: set[str] = set()
        for chunk in chunks(rows, REMOVE_LIMIT):
            removed |= self.hook.remove_from_list(int(target), [w.ident for w in chunk])
        return [
            (w.ident, target, "remove", w.uid, REMOVED if w.ident in removed else NOT_IN_LIST, None, None)
            for w in rows
        ]
