"""Loopback emulator of the Dotdigital (dotmailer) REST API v2, for tests, benchmarks and the demo.

It follows the public v2 contract: HTTP Basic auth (401 ``"Authorization has been denied for this
request."``), JSON bodies with case-insensitive property names, camelCase answers, errors as
``{"message": "... ERROR_X"}``, ``select`` (1-1000) / ``skip`` paging, date path segments, and the
flat scheme's cap: every authenticated call counts towards ``hourly_limit`` calls per rolling hour;
past it every call answers ``ERROR_APIUSAGE_EXCEEDED`` (status ``usage_exceeded_status``, 400 by
default; the status is documented only second-hand) until the hour's count drops.
``/v2/account-info`` reports ``ApiCallsInLastHour`` and ``ApiCallsRemaining`` from that count.
With ``tier_limit_per_minute`` set, it also answers 429 with ``X-RateLimit-*`` headers when the
per-minute tier is spent (the tiered scheme); ``X-RateLimit-Reset`` is a UTC epoch time, or the
seconds until the reset with ``rate_limit_reset="seconds"`` (Dotdigital documents both readings).
File imports larger than the endpoint's documented limit answer 400: 10 MB (decimal) for
``/v2/address-books/{id}/contacts/import``, 50 MB for its with-merge-option variant and for the
account-wide ``/v2/contacts/import``.

Where the contract is silent, these are the sandbox's choices:

* Bulk imports (CSV via multipart with a ``filename``, or JSON ``{"fileName", "data": base64}``)
  are processed on arrival; the status answers ``NotFinished`` for ``import_polls`` polls, then
  ``Finished``. A file without an ``Email`` column is ``InvalidFileFormat``. Columns naming no data
  field are ignored (listed in :attr:`DotdigitalSandbox.ignored_columns`).
* ``report-faults`` has the documented shape: a header row (``Reason,Email``; tests may change
  it with :attr:`DotdigitalSandbox.faults_header`), then ``reason,email`` rows with the plain-text
  reasons Dotdigital's connector reads (``Invalid Entries`` for a bad email, ``Failures`` for a bad
  opt-in type, email type or data field value, ``Unsubscribed``, ``Hard Bounced``, ``Globally
  Suppressed``, ...; see ``FAULT_REASON_OF_STATUS``). A repeated email is ``Duplicate Emails``
  (the report counter's words; the first row is imported).
* Contacts unsubscribed from an address book stay in it with status ``Unsubscribed``; imports do
  not resubscribe them, and neither do imports resubscribe account-level suppressions.
* Adding one contact to an address book (``POST /v2/address-books/{id}/contacts``) fires the
  book's join actions, recorded in :attr:`DotdigitalSandbox.join_actions`; a suppressed contact
  answers 400 ``ERROR_CONTACT_SUPPRESSED``.
* Bulk removals (``/contacts/delete``) report ``Started`` for ``deletion_polls`` polls, then
  ``Completed``.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hmac
import io
import itertools
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer, json_response

_ROUTE_PARAM = re.compile(r"\(\?P<(\w+)>[^)]*\)")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DATAFIELD_NAME = re.compile(r"^[A-Za-z0-9_-]{1,20}$")
SPECIAL_COLUMNS = {"email", "emailtype", "optintype"}
CONSENT_COLUMNS = {"consenttext", "consenturl", "consentdatetime", "consentip", "consentuseragent"}
BOOK_IMPORT_MAX_BYTES = 10_000_000
MAX_IMPORT_BYTES = 50_000_000
FAULT_REASON_OF_STATUS = {
    "Unsubscribed": "Unsubscribed",
    "HardBounced": "Hard Bounced",
    "SoftBounced": "Soft Bounced",
    "IspComplained": "Isp Complaints",
    "MailBlocked": "Mail Blocked",
    "DomainSuppression": "Domain Suppressed",
    "SharedSuppression": "Globally Suppressed",
    "Suppressed": "Suppressed by you",
    "NotAllowed": "Blocked",
    "PendingOptIn": "Pending Double Optin",
}
MAX_ACTIVE_IMPORTS = 25
DEFAULT_FIELDS = (
    ("FIRSTNAME", "String"),
    ("LASTNAME", "String"),
    ("FULLNAME", "String"),
    ("GENDER", "String"),
    ("POSTCODE", "String"),
)
OPT_IN_TYPES = ("Unknown", "Single", "Double", "VerifiedDouble")
EMAIL_TYPES = ("PlainText", "Html")


def ci(doc: Any) -> dict[str, Any]:
    """A JSON object with lower-cased keys (the API reads property names case-insensitively)."""
    return {str(k).lower(): v for k, v in doc.items()} if isinstance(doc, dict) else {}


def iso(ts: float) -> str:
    """``YYYY-MM-DDTHH:MM:SS.fffZ`` of an epoch time."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_api_date(text: str) -> float:
    """Epoch seconds of a date path segment (``2024-06-01`` or ``2024-06-01T00:00:00[Z]``)."""
    value = text.strip().rstrip("Z")
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    raise ValueError(text)


@dataclass
class Contact:
    id: int
    email: str
    opt_in_type: str = "Unknown"
    email_type: str = "Html"
    data_fields: dict[str, Any] = field(default_factory=dict)
    status: str = "Subscribed"
    modified: float = 0.0
    status_changed: float = 0.0

    def doc(self, full: bool = True, status: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "optInType": self.opt_in_type,
            "emailType": self.email_type,
            "dataFields": [{"key": k, "value": v} for k, v in self.data_fields.items()] if full else None,
            "status": status or self.status,
        }


@dataclass
class Membership:
    status: str
    changed: float


@dataclass
class AddressBook:
    id: int
    name: str
    visibility: str = "Private"
    members: dict[int, Membership] = field(default_factory=dict)

    def doc(self) -> dict[str, Any]:
        subscribed = sum(1 for m in self.members.values() if m.status == "Subscribed")
        return {"id": self.id, "name": self.name, "visibility": self.visibility, "contacts": subscribed}


@dataclass
class ImportJob:
    id: str
    book_id: int | None
    filename: str
    polls_left: int
    status: str = "NotFinished"
    final_status: str = "Finished"
    report: dict[str, int] = field(default_factory=dict)
    faults: str = ""
    rows: int = 0


@dataclass
class Campaign:
    id: int
    name: str
    subject: str = ""
    from_name: str = "Lytics"
    sends: list[dict[str, Any]] = field(default_factory=list)
    opens: list[dict[str, Any]] = field(default_factory=list)
    clicks: list[dict[str, Any]] = field(default_factory=list)

    def doc(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "subject": self.subject,
            "fromName": self.from_name,
            "status": "Sent",
        }


_REPORT_KEYS = (
    "newContacts",
    "updatedContacts",
    "globallySuppressed",
    "invalidEntries",
    "duplicateEmails",
    "blocked",
    "unsubscribed",
    "hardBounced",
    "softBounced",
    "ispComplaints",
    "mailBlocked",
    "domainSuppressed",
    "pendingDoubleOptin",
    "failures",
    "suppressedContacts",
)
_STATUS_COUNTER = {
    "Unsubscribed": "unsubscribed",
    "HardBounced": "hardBounced",
    "SoftBounced": "softBounced",
    "IspComplained": "ispComplaints",
    "MailBlocked": "mailBlocked",
    "DomainSuppression": "domainSuppressed",
    "PendingOptIn": "pendingDoubleOptin",
    "SharedSuppression": "globallySuppressed",
}


# What a test may change on a running sandbox and :meth:`DotdigitalSandbox.reset` puts back.
_SETTINGS = (
    "username",
    "_password",
    "account_id",
    "hourly_limit",
    "tier_limit_per_minute",
    "rate_limit_reset",
    "usage_exceeded_status",
    "import_polls",
    "deletion_polls",
    "clock",
)


class DotdigitalSandbox(SandboxHTTPServer):
    """Dotdigital v2 emulator; see the module docstring for the contract and the choices."""

    def __init__(
        self,
        username: str = "apiuser-sandbox@apiconnector.com",
        password: str = "sandbox-password",
        account_id: int = 24114,
        hourly_limit: int = 2000,
        tier_limit_per_minute: int | None = None,
        rate_limit_reset: str = "epoch",
        usage_exceeded_status: int = 400,
        import_polls: int = 1,
        deletion_polls: int = 1,
        clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.username = username
        self._password = password
        self.account_id = account_id
        self.hourly_limit = hourly_limit
        self.tier_limit_per_minute = tier_limit_per_minute
        self.rate_limit_reset = rate_limit_reset
        self.usage_exceeded_status = usage_exceeded_status
        self.import_polls = import_polls
        self.deletion_polls = deletion_polls
        self.clock = clock
        self._settings = {name: getattr(self, name) for name in _SETTINGS}
        self.state_lock = threading.RLock()
        self._new_account()
        self._routes()

    def reset(self) -> None:
        """Back to the account as it was created (settings, data, call window, faults, counters),
        so that one server started per test session serves each test as a new one."""
        with self.state_lock:
            for name, value in self._settings.items():
                setattr(self, name, value)
            self._new_account()
        self.faults.clear()
        self.reset_counters()

    def _new_account(self) -> None:
        self.faults_header = ["Reason", "Email"]
        self.upload_sizes: list[tuple[str, int]] = []
        self.api_calls: deque[float] = deque()
        self.tier_calls: deque[float] = deque()
        self.rejected_for_usage = 0
        self.books: dict[int, AddressBook] = {}
        self.contacts: dict[int, Contact] = {}
        self.by_email: dict[str, int] = {}
        self.data_fields: dict[str, dict[str, Any]] = {}
        self.imports: dict[str, ImportJob] = {}
        self.deletions: dict[str, dict[str, Any]] = {}
        self.campaigns: dict[int, Campaign] = {}
        self.join_actions: list[tuple[int, str]] = []
        self.challenges: list[tuple[int | None, str]] = []
        self.ignored_columns: list[str] = []
        self.next_import_status: str | None = None
        self._ids = itertools.count(1001)
        for name, kind in DEFAULT_FIELDS:
            self.add_data_field(name, kind)

    # -- routing ----------------------------------------------------------------------------
    def _routes(self) -> None:
        book = r"/v2/address-books/(?P<book>\d+)"
        date = r"(?P<date>[^/]+)"
        for method, pattern, handler in (
            ("GET", r"/v2/account-info", self._account_info),
            ("GET", r"/v2/server-time", self._server_time),
            ("GET", r"/v2/address-books", self._list_books),
            ("POST", r"/v2/address-books", self._create_book),
            ("GET", book, self._get_book),
            ("GET", rf"{book}/contacts", self._book_contacts),
            ("POST", rf"{book}/contacts", self._add_contact),
            ("POST", rf"{book}/contacts/import", self._import),
            ("POST", rf"{book}/contacts/import/with-merge-option/(?P<merge>[012])", self._import),
            ("POST", rf"{book}/contacts/delete", self._bulk_delete),
            ("POST", rf"{book}/contacts/unsubscribe", self._unsubscribe),
            ("POST", rf"{book}/contacts/resubscribe", self._resubscribe),
            ("POST", rf"{book}/contacts/resubscribe-with-no-challenge", self._resubscribe),
            ("DELETE", rf"{book}/contacts/(?P<contact>\d+)", self._remove_contact),
            ("GET", rf"{book}/contacts/modified-since/{date}", self._modified_since),
            ("GET", rf"{book}/contacts/unsubscribed-since/{date}", self._unsubscribed_since),
            ("POST", r"/v2/contacts/import", self._import),
            ("POST", r"/v2/contacts/import/with-merge-option/(?P<merge>[012])", self._import),
            ("GET", r"/v2/contacts/import/(?P<import_id>[^/]+)", self._import_status),
            ("GET", r"/v2/contacts/import/(?P<import_id>[^/]+)/report", self._import_report),
            ("GET", r"/v2/contacts/import/(?P<import_id>[^/]+)/report-faults", self._import_faults),
            ("GET", r"/v2/contacts/deletion/(?P<deletion>[^/]+)", self._deletion_status),
            ("POST", r"/v2/contacts/unsubscribe", self._unsubscribe),
            ("POST", r"/v2/contacts/resubscribe", self._resubscribe),
            ("POST", r"/v2/contacts/resubscribe-with-no-challenge", self._resubscribe),
            ("GET", rf"/v2/contacts/modified-since/{date}", self._modified_since),
            ("GET", rf"/v2/contacts/unsubscribed-since/{date}", self._unsubscribed_since),
            ("GET", rf"/v2/contacts/suppressed-since/{date}", self._suppressed_since),
            ("POST", r"/v2/contacts", self._upsert_contact),
            ("GET", r"/v2/contacts/(?P<ident>[^/]+)", self._get_contact),
            ("GET", r"/v2/data-fields", self._list_fields),
            ("POST", r"/v2/data-fields", self._create_field),
            ("GET", rf"/v2/campaigns/with-activity-since/{date}", self._campaigns_since),
            ("GET", r"/v2/campaigns/(?P<campaign>\d+)/activities", self._activities),
            ("GET", rf"/v2/campaigns/(?P<campaign>\d+)/activities/since-date/{date}", self._activities),
            ("GET", rf"/v2/campaigns/(?P<campaign>\d+)/opens/since-date/{date}", self._opens),
            ("GET", rf"/v2/campaigns/(?P<campaign>\d+)/clicks/since-date/{date}", self._clicks),
        ):
            name = method + " " + _ROUTE_PARAM.sub(r"{\1}", pattern)
            self.add_route(method, pattern, handler, name)

    # -- envelope, auth and the call cap ------------------------------------------------------
    @staticmethod
    def fail(message: str, status: int = 400) -> Response:
        return json_response({"message": message}, status)

    def error_response(self, status: int, message: str, request: Request) -> Response:
        return self.fail(message, status)

    def authenticate(self, request: Request) -> Response | None:
        header = request.header("Authorization") or ""
        scheme, _, encoded = header.partition(" ")
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = password = ""
        if (
            scheme.lower() != "basic"
            or not hmac.compare_digest(user.encode(), self.username.encode())
            or not hmac.compare_digest(password.encode(), self._password.encode())
        ):
            return self.fail("Authorization has been denied for this request.", 401)
        now = self.clock()
        with self.state_lock:
            while self.api_calls and self.api_calls[0] <= now - 3600:
                self.api_calls.popleft()
            if len(self.api_calls) >= self.hourly_limit:
                self.rejected_for_usage += 1
                return self.fail(
                    "Your account has generated excess API activity and is being temporarily capped. "
                    "Please contact support. ERROR_APIUSAGE_EXCEEDED",
                    self.usage_exceeded_status,
                )
            if self.tier_limit_per_minute:
                minute = now - now % 60
                while self.tier_calls and self.tier_calls[0] < minute:
                    self.tier_calls.popleft()
                if len(self.tier_calls) >= self.tier_limit_per_minute:
                    reset = int(minute + 60 - now) if self.rate_limit_reset == "seconds" else int(minute + 60)
                    return json_response(
                        {"message": "Too Many Requests"},
                        429,
                        {
                            "X-RateLimit-Limit": str(self.tier_limit_per_minute),
                            "X-RateLimit-Remaining": "0",
                            "X-RateLimit-Reset": str(reset),
                            "X-RateLimit-Scope": "low",
                        },
                    )
                self.tier_calls.append(now)
            self.api_calls.append(now)
        return None

    @property
    def calls_in_last_hour(self) -> int:
        now = self.clock()
        with self.state_lock:
            return sum(1 for t in self.api_calls if t > now - 3600)

    def _window(self, request: Request) -> tuple[int, int] | Response:
        """``(skip, select)`` of a paged request, or the API's error for bad values."""
        try:
            select = int(request.query.get("select", "1000"))
            skip = int(request.query.get("skip", "0"))
        except ValueError:
            return self.fail("select and skip must be numbers. ERROR_PARAMETER_INVALID")
        if not 1 <= select <= 1000 or skip < 0:
            return self.fail(
                "select must be between 1 and 1000. skip must not be negative. ERROR_PARAMETER_INVALID"
            )
        return skip, select

    def _page(self, request: Request, items: list[Any]) -> Response:
        window = self._window(request)
        if isinstance(window, Response):
            return window
        skip, select = window
        return json_response(items[skip : skip + select])

    def _since(self, request: Request) -> float | Response:
        try:
            return parse_api_date(request.params["date"])
        except ValueError:
            return self.fail(f"Date {request.params['date']!r} is not valid. ERROR_PARAMETER_INVALID")

    def _book(self, request: Request) -> AddressBook | Response:
        book = self.books.get(int(request.params["book"]))
        if book is None:
            return self.fail("Error: ERROR_ADDRESSBOOK_NOT_FOUND", 404)
        return book

    # -- helpers for tests and the demo -------------------------------------------------------
    def add_data_field(self, name: str, kind: str = "String", visibility: str = "Private") -> None:
        self.data_fields[name.upper()] = {
            "name": name.upper(),
            "type": kind,
            "visibility": visibility,
            "defaultValue": None,
        }

    def add_address_book(self, name: str, visibility: str = "Private") -> int:
        with self.state_lock:
            book = AddressBook(next(self._ids), name, visibility)
            self.books[book.id] = book
            return book.id

    def add_contact(
        self,
        email: str,
        status: str = "Subscribed",
        books: tuple[int, ...] | list[int] = (),
        data_fields: dict[str, Any] | None = None,
        book_status: str = "Subscribed",
    ) -> int:
        with self.state_lock:
            contact = self._upsert(email, "Unknown", "Html", data_fields or {})
            contact.status = status
            for book_id in books:
                self.books[book_id].members[contact.id] = Membership(book_status, self.clock())
            return contact.id

    def contact(self, email: str) -> Contact | None:
        cid = self.by_email.get(email.strip().lower())
        return self.contacts.get(cid) if cid else None

    def book_by_name(self, name: str) -> AddressBook | None:
        return next((b for b in self.books.values() if b.name.lower() == name.lower()), None)

    def members(self, book_id: int) -> dict[str, str]:
        """``email -> membership status`` of an address book."""
        with self.state_lock:
            book = self.books[book_id]
            return {self.contacts[cid].email: m.status for cid, m in book.members.items()}

    def add_campaign(self, name: str, subject: str = "") -> int:
        with self.state_lock:
            campaign = Campaign(next(self._ids), name, subject or name)
            self.campaigns[campaign.id] = campaign
            return campaign.id

    def record_send(self, campaign_id: int, email: str, when: float) -> None:
        c = self.contact(email)
        self.campaigns[campaign_id].sends.append(
            {
                "contactId": c.id if c else 0,
                "email": email,
                "numOpens": 0,
                "numPageViews": 0,
                "numClicks": 0,
                "numForwards": 0,
                "numEstimatedForwards": 0,
                "numReplies": 0,
                "dateSent": iso(when),
                "dateFirstOpened": None,
                "dateLastOpened": None,
                "firstOpenIp": None,
                "unsubscribed": False,
                "softBounced": False,
                "hardBounced": False,
                "_ts": when,
            }
        )

    def record_open(self, campaign_id: int, email: str, when: float) -> None:
        c = self.contact(email)
        self.campaigns[campaign_id].opens.append(
            {
                "contactId": c.id if c else 0,
                "email": email,
                "mailClient": "Sandbox Mail",
                "mailClientVersion": "1",
                "ipAddress": "192.0.2.1",
                "userAgent": "sandbox",
                "isHtml": True,
                "isForward": False,
                "dateOpened": iso(when),
                "_ts": when,
            }
        )

    def record_click(self, campaign_id: int, email: str, url: str, when: float) -> None:
        c = self.contact(email)
        self.campaigns[campaign_id].clicks.append(
            {
                "contactId": c.id if c else 0,
                "email": email,
                "url": url,
                "ipAddress": "192.0.2.1",
                "userAgent": "sandbox",
                "dateClicked": iso(when),
                "keyword": "",
            }
            | {"_ts": when}
        )

    # -- internal state changes ---------------------------------------------------------------
    def _upsert(self, email: str, opt_in: str, email_type: str, fields: dict[str, Any]) -> Contact:
        key = email.strip().lower()
        now = self.clock()
        cid = self.by_email.get(key)
        if cid is None:
            contact = Contact(next(self._ids), key, opt_in, email_type, {}, "Subscribed", now, now)
            self.contacts[contact.id] = contact
            self.by_email[key] = contact.id
        else:
            contact = self.contacts[cid]
            contact.opt_in_type, contact.email_type = opt_in, email_type
        for name, value in fields.items():
            contact.data_fields[name.upper()] = value
        contact.modified = now
        return contact

    def _field_error(self, name: str, value: Any) -> str | None:
        spec = self.data_fields.get(name.upper())
        if spec is None:
            return f"Data field {name} does not exist. ERROR_DATAFIELD_NOTFOUND"
        if value in (None, ""):
            return None
        kind = spec["type"]
        try:
            if kind == "Numeric":
                float(value)
            elif kind == "Date":
                parse_api_date(str(value)[:19])
            elif kind == "Boolean" and str(value).lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
        except ValueError:
            return f"Value of {name} is not a valid {kind}. ERROR_CONTACT_INVALID"
        return None

    # -- account and books --------------------------------------------------------------------
    def _account_info(self, request: Request) -> Response:
        used = self.calls_in_last_hour
        props = [
            ("ApiEndpoint", "String", f"{self.base_url}/"),
            ("ApiCallsInLastHour", "Int", str(used)),
            ("ApiCallsRemaining", "Int", str(max(0, self.hourly_limit - used))),
            ("Name", "String", "Sandbox"),
            ("MainEmail", "String", "owner@example.com"),
            ("TimeZoneIana", "String", "Europe/London"),
        ]
        return json_response(
            {"id": self.account_id, "properties": [{"name": n, "type": t, "value": v} for n, t, v in props]}
        )

    def _server_time(self, request: Request) -> Response:
        return json_response(iso(self.clock()))

    def _list_books(self, request: Request) -> Response:
        with self.state_lock:
            return self._page(request, [b.doc() for b in sorted(self.books.values(), key=lambda b: b.id)])

    def _create_book(self, request: Request) -> Response:
        body = ci(request.json())
        name = str(body.get("name") or "").strip()
        if not name or len(name) > 128:
            return self.fail("Name must be 1-128 characters. ERROR_ADDRESSBOOK_INVALID")
        with self.state_lock:
            if self.book_by_name(name):
                return self.fail(
                    "That name is in use already, please choose another. ERROR_ADDRESSBOOK_DUPLICATE"
                )
            book_id = self.add_address_book(name, str(body.get("visibility") or "Private"))
            return json_response(self.books[book_id].doc(), 201)

    def _get_book(self, request: Request) -> Response:
        book = self._book(request)
        return book if isinstance(book, Response) else json_response(book.doc())

    def _book_contacts(self, request: Request) -> Response:
        book = self._book(request)
        if isinstance(book, Response):
            return book
        window = self._window(request)
        if isinstance(window, Response):
            return window
        skip, select = window
        full = request.flag("withFullData")
        with self.state_lock:
            chosen = sorted(book.members.items())[skip : skip + select]
            items = [
                self.contacts[cid].doc(full, "Unsubscribed" if m.status == "Unsubscribed" else None)
                for cid, m in chosen
            ]
        return json_response(items)

    # -- contacts -----------------------------------------------------------------------------
    def _contact_body(self, body: dict[str, Any]) -> tuple[str, str, str, dict[str, Any]] | Response:
        email = str(body.get("email") or "").strip()
        if not EMAIL_RE.match(email):
            return self.fail("Email is not a valid email address. ERROR_PARAMETER_INVALID")
        opt_in = str(body.get("optintype") or "Unknown")
        email_type = str(body.get("emailtype") or "Html")
        if opt_in not in OPT_IN_TYPES or email_type not in EMAIL_TYPES:
            return self.fail("optInType or emailType is not valid. ERROR_PARAMETER_INVALID")
        fields: dict[str, Any] = {}
        for item in body.get("datafields") or []:
            item = ci(item)
            name, value = str(item.get("key") or ""), item.get("value")
            problem = self._field_error(name, value)
            if problem:
                return self.fail(problem)
            fields[name.upper()] = value
        return email, opt_in, email_type, fields

    def _add_contact(self, request: Request) -> Response:
        book = self._book(request)
        if isinstance(book, Response):
            return book
        parsed = self._contact_body(ci(request.json()))
        if isinstance(parsed, Response):
            return parsed
        email, opt_in, email_type, fields = parsed
        with self.state_lock:
            existing = self.contact(email)
            if existing and existing.status != "Subscribed":
                return self.fail("Contact is suppressed. ERROR_CONTACT_SUPPRESSED")
            member = book.members.get(existing.id) if existing else None
            contact = self._upsert(email, opt_in, email_type, fields)
            if member and member.status == "Unsubscribed":
                return json_response(contact.doc(status="Unsubscribed"))
            book.members[contact.id] = Membership("Subscribed", self.clock())
            self.join_actions.append((book.id, contact.email))
            return json_response(contact.doc())

    def _upsert_contact(self, request: Request) -> Response:
        parsed = self._contact_body(ci(request.json()))
        if isinstance(parsed, Response):
            return parsed
        with self.state_lock:
            return json_response(self._upsert(*parsed).doc(), 201)

    def _get_contact(self, request: Request) -> Response:
        ident = request.params["ident"]
        with self.state_lock:
            contact = self.contacts.get(int(ident)) if ident.isdigit() else self.contact(ident)
            if contact is None or (ident.isdigit() and contact.status != "Subscribed"):
                return self.fail("Error: ERROR_CONTACT_NOT_FOUND", 404)
            return json_response(contact.doc())

    def _remove_contact(self, request: Request) -> Response:
        book = self._book(request)
        if isinstance(book, Response):
            return book
        with self.state_lock:
            book.members.pop(int(request.params["contact"]), None)
        return Response(204)

    def _bulk_delete(self, request: Request) -> Response:
        book = self._book(request)
        if isinstance(book, Response):
            return book
        ids = request.json()
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            return self.fail("Body must be an array of contact ids. ERROR_PARAMETER_INVALID")
        with self.state_lock:
            for cid in ids:
                book.members.pop(cid, None)
            job = {
                "id": str(uuid.uuid4()),
                "status": "Started",
                "polls": self.deletion_polls,
                "ids": len(ids),
            }
            self.deletions[job["id"]] = job
        return json_response({"id": job["id"], "status": "Started"}, 202)

    def _deletion_status(self, request: Request) -> Response:
        with self.state_lock:
            job = self.deletions.get(request.params["deletion"])
            if job is None:
                return self.fail("Error: ERROR_NOT_FOUND", 404)
            if job["polls"] > 0:
                job["polls"] -= 1
            else:
                job["status"] = "Completed"
            return json_response({"id": job["id"], "status": job["status"]})

    def _unsubscribe(self, request: Request) -> Response:
        email = str(ci(request.json()).get("email") or "")
        with self.state_lock:
            contact = self.contact(email)
            if contact is None:
                return self.fail("Error: ERROR_CONTACT_NOT_FOUND", 404)
            before = contact.doc()
            now = self.clock()
            if "book" in request.params:
                book = self._book(request)
                if isinstance(book, Response):
                    return book
                book.members[contact.id] = Membership("Unsubscribed", now)
            else:
                contact.status, contact.status_changed, contact.modified = "Unsubscribed", now, now
            return json_response(
                {"suppressedContact": before, "dateRemoved": iso(now), "reason": "Unsubscribed"}
            )

    def _resubscribe(self, request: Request) -> Response:
        body = ci(request.json())
        parsed = self._contact_body(ci(body.get("unsubscribedcontact")))
        if isinstance(parsed, Response):
            return parsed
        no_challenge = request.path.endswith("no-challenge")
        with self.state_lock:
            book = None
            if "book" in request.params:
                book = self._book(request)
                if isinstance(book, Response):
                    return book
            existing = self.contact(parsed[0])
            if existing and existing.status in ("HardBounced", "IspComplained", "DirectComplaint"):
                return json_response({"contact": existing.doc(), "status": "ContactCannotBeUnsuppressed"})
            if not no_challenge:
                contact = existing or self._upsert(*parsed)
                self.challenges.append((book.id if book else None, contact.email))
                return json_response({"contact": contact.doc(), "status": "ContactChallenged"})
            now = self.clock()
            contact = self._upsert(*parsed)
            if contact.status != "Subscribed":
                contact.status, contact.status_changed = "Subscribed", now
            if book is not None:
                book.members[contact.id] = Membership("Subscribed", now)
            return json_response({"contact": contact.doc(), "status": "ContactAdded"})

    def _modified_since(self, request: Request) -> Response:
        since = self._since(request)
        if isinstance(since, Response):
            return since
        full = request.flag("withFullData")
        with self.state_lock:
            if "book" in request.params:
                book = self._book(request)
                if isinstance(book, Response):
                    return book
                items = [
                    self.contacts[cid].doc(full)
                    for cid, m in sorted(book.members.items())
                    if max(m.changed, self.contacts[cid].modified) >= since
                ]
            else:
                items = [c.doc(full) for _, c in sorted(self.contacts.items()) if c.modified >= since]
        return self._page(request, items)

    def _unsubscribed_since(self, request: Request) -> Response:
        since = self._since(request)
        if isinstance(since, Response):
            return since
        with self.state_lock:
            if "book" in request.params:
                book = self._book(request)
                if isinstance(book, Response):
                    return book
                pairs = [
                    (self.contacts[cid], m.changed)
                    for cid, m in sorted(book.members.items())
                    if m.status == "Unsubscribed" and m.changed >= since
                ]
            else:
                pairs = [
                    (c, c.status_changed)
                    for _, c in sorted(self.contacts.items())
                    if c.status == "Unsubscribed" and c.status_changed >= since
                ]
            items = [
                {
                    "suppressedContact": c.doc(False, "Unsubscribed"),
                    "dateRemoved": iso(ts),
                    "reason": "Unsubscribed",
                }
                for c, ts in pairs
            ]
        return self._page(request, items)

    def _suppressed_since(self, request: Request) -> Response:
        since = self._since(request)
        if isinstance(since, Response):
            return since
        with self.state_lock:
            items = [
                {"suppressedContact": c.doc(False), "dateRemoved": iso(c.status_changed), "reason": c.status}
                for _, c in sorted(self.contacts.items())
                if c.status != "Subscribed" and c.status_changed >= since
            ]
        return self._page(request, items)

    # -- bulk import ---------------------------------------------------------------------------
    def _upload(self, request: Request) -> tuple[str, bytes] | Response:
        ctype = request.header("Content-Type") or ""
        if ctype.lower().startswith("multipart/form-data"):
            message = BytesParser(policy=HTTP).parsebytes(
                f"Content-Type: {ctype}\r\n\r\n".encode("latin-1") + request.body
            )
            for part in message.iter_parts():
                if part.get_filename():
                    return part.get_filename(), part.get_payload(decode=True) or b""
            return self.fail("file must be valid")
        body = ci(request.json() if request.body else {})
        name = body.get("filename") or ""
        try:
            data = base64.b64decode(str(body.get("data") or ""), validate=True)
        except (binascii.Error, ValueError):
            return self.fail("file must be valid")
        if not name or not data:
            return self.fail("file must be valid")
        return str(name), data

    def _import(self, request: Request) -> Response:
        book: AddressBook | None = None
        if "book" in request.params:
            found = self._book(request)
            if isinstance(found, Response):
                return found
            book = found
        upload = self._upload(request)
        if isinstance(upload, Response):
            return upload
        filename, data = upload
        route = request.path.split("?")[0]
        plain_book_import = book is not None and "merge" not in request.params
        limit = BOOK_IMPORT_MAX_BYTES if plain_book_import else MAX_IMPORT_BYTES
        with self.state_lock:
            self.upload_sizes.append((route, len(data)))
        if len(data) > limit:
            return self.fail(f"The file is larger than {limit // 1_000_000}MB. ERROR_IMPORT_FILE_TOO_LARGE")
        if not filename.lower().endswith((".csv", ".xls", ".xlsx")):
            return self.fail("file must be valid")
        with self.state_lock:
            active = sum(1 for job in self.imports.values() if job.status == "NotFinished")
            if active >= MAX_ACTIVE_IMPORTS:
                return self.fail("There are more than 25 imports running. ERROR_IMPORT_TOOMANYACTIVEIMPORTS")
            job = ImportJob(str(uuid.uuid4()), book.id if book else None, filename, self.import_polls)
            self._process(job, book, data, int(request.params.get("merge", "0")))
            if self.next_import_status:
                job.final_status, self.next_import_status = self.next_import_status, None
            self.imports[job.id] = job
        return json_response({"id": job.id, "status": "NotFinished"}, 202)

    def _process(self, job: ImportJob, book: AddressBook | None, data: bytes, merge: int) -> None:
        report = dict.fromkeys(_REPORT_KEYS, 0)
        job.report = report
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            job.final_status = "InvalidFileFormat"
            return
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None) or []
        lowered = [h.strip().lower() for h in header]
        if "email" not in lowered:
            job.final_status = "InvalidFileFormat"
            return
        columns = []
        for name, low in zip(header, lowered, strict=True):
            if low in SPECIAL_COLUMNS or low in CONSENT_COLUMNS:
                columns.append(low)
            elif name.strip().upper() in self.data_fields:
                columns.append(name.strip().upper())
            else:
                self.ignored_columns.append(name)
                columns.append("")
        faults = io.StringIO()
        writer = csv.writer(faults, lineterminator="\r\n")
        writer.writerow(self.faults_header)
        seen: set[str] = set()
        now = self.clock()
        for row in reader:
            if not row:
                continue
            job.rows += 1
            values = dict(zip(columns, row, strict=False))
            email = values.get("email", "").strip().lower()
            reason = self._row_problem(email, values, seen)
            if reason is None:
                contact = self.contact(email)
                member = book.members.get(contact.id) if (book and contact) else None
                if contact and contact.status != "Subscribed":
                    reason = FAULT_REASON_OF_STATUS.get(contact.status, "Suppressed by you")
                    report[_STATUS_COUNTER.get(contact.status, "suppressedContacts")] += 1
                    report["suppressedContacts"] += 1
                elif member and member.status == "Unsubscribed":
                    reason = "Unsubscribed"
                    report["unsubscribed"] += 1
            seen.add(email)
            if reason is not None:
                writer.writerow([reason, values.get("email", "").strip()])
                continue
            fields = {
                k: v
                for k, v in values.items()
                if k and k not in SPECIAL_COLUMNS and k not in CONSENT_COLUMNS and (merge == 0 or v != "")
            }
            if merge == 2 and contact:
                fields = {k: v for k, v in fields.items() if contact.data_fields.get(k) in (None, "")}
            report["newContacts" if contact is None else "updatedContacts"] += 1
            opt_in = values.get("optintype") or (contact.opt_in_type if contact else "Unknown")
            email_type = values.get("emailtype") or (contact.email_type if contact else "Html")
            updated = self._upsert(email, opt_in, email_type, fields)
            if book is not None:
                book.members[updated.id] = Membership("Subscribed", now)
        job.faults = faults.getvalue()

    def _row_problem(self, email: str, values: dict[str, str], seen: set[str]) -> str | None:
        if not EMAIL_RE.match(email):
            return "Invalid Entries"
        if email in seen:
            return "Duplicate Emails"
        if values.get("optintype") and values["optintype"] not in OPT_IN_TYPES:
            return "Failures"
        if values.get("emailtype") and values["emailtype"] not in EMAIL_TYPES:
            return "Failures"
        for name, value in values.items():
            special = name in SPECIAL_COLUMNS or name in CONSENT_COLUMNS
            if name and not special and self._field_error(name, value):
                return "Failures"
        return None

    def _job(self, request: Request) -> ImportJob | Response:
        job = self.imports.get(request.params["import_id"])
        if job is None:
            return self.fail("Error: ERROR_IMPORT_NOT_FOUND", 404)
        return job

    def _import_status(self, request: Request) -> Response:
        with self.state_lock:
            job = self._job(request)
            if isinstance(job, Response):
                return job
            if job.status == "NotFinished":
                if job.polls_left > 0:
                    job.polls_left -= 1
                else:
                    job.status = job.final_status
            return json_response({"id": job.id, "status": job.status})

    def _finished_job(self, request: Request) -> ImportJob | Response:
        """The finished import named by the path, or the error the API gives before it finished."""
        job = self._job(request)
        if isinstance(job, Response) or job.status == "Finished":
            return job
        return self.fail(
            "Import is not processed yet or completed with error. ERROR_IMPORT_REPORT_NOT_FOUND", 404
        )

    def _import_report(self, request: Request) -> Response:
        with self.state_lock:
            job = self._finished_job(request)
            if isinstance(job, Response):
                return job
            return json_response(self._counted(job))

    def _counted(self, job: ImportJob) -> dict[str, int]:
        report = dict(job.report)
        faults = list(csv.reader(io.StringIO(job.faults)))[1:]
        reasons = [r[0] for r in faults if r]
        report["invalidEntries"] = reasons.count("Invalid Entries")
        report["duplicateEmails"] = reasons.count("Duplicate Emails")
        report["failures"] = reasons.count("Failures")
        return report

    def _import_faults(self, request: Request) -> Response:
        with self.state_lock:
            job = self._finished_job(request)
            if isinstance(job, Response):
                return job
            return Response(200, job.faults.encode(), "application/octet-stream")

    # -- data fields -------------------------------------------------------------------------
    def _list_fields(self, request: Request) -> Response:
        with self.state_lock:
            return json_response(list(self.data_fields.values()))

    def _create_field(self, request: Request) -> Response:
        body = ci(request.json())
        name = str(body.get("name") or "")
        kind = str(body.get("type") or "String")
        if not DATAFIELD_NAME.match(name) or kind not in ("String", "Numeric", "Date", "Boolean"):
            return self.fail("Name must be up to 20 letters, digits, - or _. ERROR_PARAMETER_INVALID")
        with self.state_lock:
            if name.upper() in self.data_fields:
                return self.fail("Field already exists. ERROR_NON_UNIQUE_DATAFIELD")
            self.add_data_field(name, kind, str(body.get("visibility") or "Private"))
            return json_response(self.data_fields[name.upper()], 201)

    # -- campaigns ---------------------------------------------------------------------------
    def _campaign(self, request: Request) -> Campaign | Response:
        campaign = self.campaigns.get(int(request.params["campaign"]))
        return campaign if campaign else self.fail("Error: ERROR_CAMPAIGN_NOT_FOUND", 404)

    @staticmethod
    def _public(items: list[dict[str, Any]], since: float) -> list[dict[str, Any]]:
        return [{k: v for k, v in item.items() if k != "_ts"} for item in items if item["_ts"] >= since]

    def _campaigns_since(self, request: Request) -> Response:
        since = self._since(request)
        if isinstance(since, Response):
            return since
        with self.state_lock:
            items = [
                c.doc()
                for _, c in sorted(self.campaigns.items())
                if any(item["_ts"] >= since for item in (*c.sends, *c.opens, *c.clicks))
            ]
        return self._page(request, items)

    def _activities(self, request: Request) -> Response:
        campaign = self._campaign(request)
        if isinstance(campaign, Response):
            return campaign
        since = self._since(request) if "date" in request.params else 0.0
        if isinstance(since, Response):
            return since
        return self._page(request, self._public(campaign.sends, since))

    def _opens(self, request: Request) -> Response:
        campaign = self._campaign(request)
        since = self._since(request)
        if isinstance(campaign, Response) or isinstance(since, Response):
            return campaign if isinstance(campaign, Response) else since  # type: ignore[return-value]
        return self._page(request, self._public(campaign.opens, since))

    def _clicks(self, request: Request) -> Response:
        campaign = self._campaign(request)
        since = self._since(request)
        if isinstance(campaign, Response) or isinstance(since, Response):
            return campaign if isinstance(campaign, Response) else since  # type: ignore[return-value]
        return self._page(request, self._public(campaign.clicks, since))


def connection_json(sandbox: DotdigitalSandbox, **extra: Any) -> str:
    """The JSON of a ``dotdigital`` connection to ``sandbox`` for an ``AIRFLOW_CONN_*`` variable."""
    return json.dumps(
        {
            "conn_type": "dotdigital",
            "host": sandbox.base_url,
            "login": sandbox.username,
            "password": sandbox._password,
            "extra": extra,
        }
    )
