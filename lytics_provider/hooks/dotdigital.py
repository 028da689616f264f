"""Hook for the Dotdigital (formerly dotmailer) REST API v2.

Authentication is HTTP Basic with an API user's username and password (the connection's Login
and Password). The endpoint is the connection's Host, else ``https://{region}-api.dotdigital.com``
(region ``r1`` by default); when no Host is set, the ``ApiEndpoint`` that ``/v2/account-info``
names is used from then on.

Every call first takes one call from a :class:`~lytics_provider.pipeline.ratelimit.CallLedger`
shared by all tasks using the connection (``calls_per_hour`` in the extras, default 2,000: the
flat scheme's rolling-hour cap). Server signals tighten it: tiered 429 with
``X-RateLimit-Reset`` (read as an epoch time or as seconds until the reset, see
:func:`~lytics_provider.pipeline.ratelimit.reset_time`) pauses every user of the ledger until the
reset, and the flat scheme's ``ERROR_APIUSAGE_EXCEEDED`` (recognised by that code in the body,
whatever the HTTP status, never as bad credentials) pauses for ``usage_backoff`` seconds and
retries until ``max_usage_wait`` has passed, then fails with :class:`ApiUsageExceededError`.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from lytics_provider.hooks.rest import RestHook
from lytics_provider.hooks.rest_auth import HttpBasic
from lytics_provider.hooks.rest_paging import skip_select
from lytics_provider.hooks.task_errors import PermanentTaskError
from lytics_provider.pipeline.http import (
    AuthError,
    HttpClient,
    PermanentServiceError,
    ServiceError,
)
from lytics_provider.pipeline.ratelimit import RateLimitWaitTooLong, reset_time

log = logging.getLogger(__name__)

DEFAULT_REGION = "r1"
REGIONS = ("r1", "r2", "r3")
PAGE_SIZE = 1000
CALLS_PER_HOUR = 2000
_CODE = re.compile(r"\b(ERROR_[A-Z_]+)\b")

IMPORT_DONE = "Finished"
IMPORT_PENDING = "NotFinished"
IMPORT_FAILED = ("RejectedByWatchdog", "InvalidFileFormat", "Unknown", "Failed", "ExceedsAllowedContactLimit")
# Upload limits of the file import endpoints, as their reference pages state them (read as decimal
# megabytes, the smaller reading): POST /v2/address-books/{id}/contacts/import takes 10 MB; its
# with-merge-option variant and the account-wide POST /v2/contacts/import take 50 MB.
BOOK_IMPORT_MAX_BYTES = 10_000_000
ACCOUNT_IMPORT_MAX_BYTES = 50_000_000
USAGE_EXCEEDED = "ERROR_APIUSAGE_EXCEEDED"


class DotdigitalError(ServiceError):
    """A Dotdigital call that failed; ``code`` is the ``ERROR_*`` token of the message, if any."""

    def __init__(self, message: str, status: int | None = None, body: Any = None, code: str | None = None):
        super().__init__(message, status, body)
        self.code = code


class PermanentDotdigitalError(DotdigitalError, PermanentTaskError):
    """A 400/404/422 Dotdigital answer other than the usage cap: not retried (fails the task if uncaught)."""


class ApiUsageExceededError(DotdigitalError):
    """The API user is over its call cap and the budget did not free up in time."""


class WrongEndpointError(Exception):
    """The connection's Host is not the account's own API endpoint (another region's)."""


def error_code(body: Any) -> str | None:
    """The ``ERROR_*`` token of an error body (``{"message": "... ERROR_X"}``)."""
    text = body.get("message", "") if isinstance(body, dict) else str(body or "")
    match = _CODE.search(str(text))
    return match.group(1) if match else None


def api_date(value: datetime | str) -> str:
    """A date path segment: ISO 8601 date-time without offset, in UTC, URL-encoded."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        value = value.strftime("%Y-%m-%dT%H:%M:%S")
    return quote(str(value), safe="")


class DotdigitalHook(RestHook):
    """Talk to the Dotdigital v2 API with the API user stored in a ``dotdigital`` connection.

    :param dotdigital_conn_id: the ``dotdigital`` connection (default ``dotdigital_default``).
    :param retry_policy: how often and how long one call is retried.
    :param usage_backoff: seconds to pause after ``ERROR_APIUSAGE_EXCEEDED`` (default 300).
    :param max_usage_wait: longest total wait for the call budget or the usage cap (default 3600).
    :param kwargs: ``ledger``, ``sleep`` and ``clock`` of :class:`~lytics_provider.hooks.rest.RestHook`.
    """

    conn_type = "dotdigital"
    hook_name = "Dotdigital"
    auth = HttpBasic()
    credentials_hint = "needs the Dotdigital API username in Login and the API password in Password."
    paging = skip_select(PAGE_SIZE)
    calls_per_hour = CALLS_PER_HOUR
    usage_backoff = 300.0
    max_usage_wait = 3600.0

    def __init__(
        self,
        *args: Any,
        usage_backoff: float | None = None,
        max_usage_wait: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if usage_backoff is not None:
            self.usage_backoff = usage_backoff
        if max_usage_wait is not None:
            self.max_usage_wait = max_usage_wait
        self.max_budget_wait = self.max_usage_wait
        self.account: dict[str, Any] | None = None

    # -- connection -----------------------------------------------------------------------
    def validate_extra(self) -> None:
        """The region must be one Dotdigital has (checked even when a Host is set)."""
        region = self._region()
        if region not in REGIONS:
            raise ValueError(
                f"Connection {self.dotdigital_conn_id!r}: region {region!r} is not one of "
                f"{', '.join(REGIONS)}; fix the Region field or set the API endpoint as Host."
            )

    def _region(self) -> str:
        return str(self.extra.get("region") or DEFAULT_REGION).lower()

    def default_api_url(self) -> str:
        """``https://{region}-api.dotdigital.com``; replaced by the account's ``ApiEndpoint`` once read."""
        return f"https://{self._region()}-api.dotdigital.com"

    def budget_spent(self, exc: RateLimitWaitTooLong) -> Exception:
        return ApiUsageExceededError(
            f"Dotdigital call budget of connection {self.dotdigital_conn_id!r} is spent: {exc}. "
            "The run stopped before sending more; it resumes on retry. Options that cost one call "
            "per contact (Trigger Join Actions, Unsubscribe on exit) use the budget fastest.",
            code="ERROR_APIUSAGE_EXCEEDED",
        )

    def refused_hint(self, exc: AuthError) -> str:
        if exc.status == 403:
            return (
                "The API user exists but this endpoint refuses it: check the Region (r1 Europe, r2 North "
                "America, r3 Asia Pacific; another region's endpoint answers 403) or the Host, and the API "
                "user's permissions."
            )
        return "Check the API username (Login) and API password (Password)."

    def check_call(self) -> str:
        """Read ``/v2/account-info`` and check the Host is the account's own API endpoint."""
        info = self.account_info()
        endpoint = str(info.get("ApiEndpoint") or "").rstrip("/")
        used = self.get_conn().base_url.rstrip("/")
        if endpoint and endpoint != used:
            raise WrongEndpointError(
                f"account {info.get('id')} lives at {endpoint}, not at the connection's Host {used} (another "
                "region?): set Host to that endpoint, or clear Host and set the Region"
            )
        return f"account {info.get('id')}, API endpoint {endpoint or used}"

    def test_connection(self) -> tuple[bool, str]:
        """Airflow's Test button: one ``/v2/account-info`` call; names a wrong region or endpoint."""
        try:
            return super().test_connection()
        except WrongEndpointError as exc:
            return False, f"Dotdigital answered, but {exc}."

    def _after_response(self, response: requests.Response) -> None:
        """Pause the shared ledger when the tiered scheme says a tier is exhausted; recognise the
        flat scheme's usage cap by its code, whatever the HTTP status it comes with."""
        super()._after_response(response)
        if response.status_code >= 400 and USAGE_EXCEEDED.encode() in response.content:
            body = HttpClient._body(response)
            if error_code(body) == USAGE_EXCEEDED:
                status = response.status_code
                raise DotdigitalError(f"Dotdigital usage cap ({status})", status, body, USAGE_EXCEEDED)
        remaining = response.headers.get("X-RateLimit-Remaining")
        reset = response.headers.get("X-RateLimit-Reset")
        if reset and (response.status_code == 429 or remaining == "0"):
            when = reset_time(reset, self.clock())
            if when is None:
                return
            assert self.ledger is not None
            self.ledger.pause_until(when)
            log.warning(
                "Dotdigital %s tier exhausted; pausing calls until %s",
                response.headers.get("X-RateLimit-Scope") or "rate-limit",
                time.strftime("%H:%M:%S", time.gmtime(when)),
            )

    # -- calls ----------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One API call, with the usage-cap and error translation this API needs."""
        client = self.get_conn()
        waited = 0.0
        while True:
            try:
                return client.request(method, path, **kwargs)
            except AuthError as exc:
                raise type(exc)(
                    f"Dotdigital refused the API user of connection {self.dotdigital_conn_id!r} "
                    f"({exc.status}): check the API username and password (and the region: another "
                    f"region's endpoint answers 403). {exc}",
                    exc.status,
                ) from None
            except ApiUsageExceededError:
                raise
            except ServiceError as exc:
                code = error_code(exc.body)
                if code != "ERROR_APIUSAGE_EXCEEDED":
                    permanent = isinstance(exc, PermanentServiceError)
                    kind = PermanentDotdigitalError if permanent else DotdigitalError
                    raise kind(str(exc), exc.status, exc.body, code) from None
                if self.usage_backoff <= 0 or waited + self.usage_backoff > self.max_usage_wait:
                    raise ApiUsageExceededError(
                        f"Dotdigital capped the API user of connection {self.dotdigital_conn_id!r} "
                        f"(over {CALLS_PER_HOUR} calls in the last hour) and it stayed capped for "
                        f"{waited:.0f}s. The run stopped without losing data and resumes on retry.",
                        exc.status,
                        exc.body,
                        code,
                    ) from None
                assert self.ledger is not None
                log.warning(
                    "Dotdigital API usage cap reached; pausing %.0fs before retrying", self.usage_backoff
                )
                self.ledger.pause_until(self.clock() + self.usage_backoff)
                waited += self.usage_backoff
                if hasattr(kwargs.get("data"), "seek"):
                    kwargs["data"].seek(0)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API call returning the decoded JSON body (None for empty bodies)."""
        response = self.request(method, path, **kwargs)
        if not response.content:
            return None
        return response.json()

    def get_page(self, path: str, params: dict[str, Any]) -> tuple[Any, Mapping[str, str]]:
        """One page through :meth:`request` (usage-cap handling included)."""
        response = self.request("GET", path, params=params)
        return (response.json() if response.content else None), response.headers

    def iter_pages(self, path: str, select: int = PAGE_SIZE, **params: Any) -> Iterator[dict[str, Any]]:
        """Items of a ``select``/``skip`` paged list; stops at a short page."""
        return self.paginate(path, params, page_size=select)

    # -- account --------------------------------------------------------------------------
    def account_info(self) -> dict[str, Any]:
        """``GET /v2/account-info`` as ``{"id": ..., <property name>: value}``; syncs the ledger."""
        body = self.call("GET", "/v2/account-info")
        info: dict[str, Any] = {"id": body.get("id")}
        for prop in body.get("properties") or []:
            info[prop.get("name")] = prop.get("value")
        used = info.get("ApiCallsInLastHour")
        if used not in (None, "") and self.ledger is not None:
            added = self.ledger.observe_usage(int(used))
            if added:
                log.info("Dotdigital counts %s calls in the last hour; %d made elsewhere", used, added)
        endpoint = str(info.get("ApiEndpoint") or "").rstrip("/")
        if endpoint and not self.host_from_connection and self._client and endpoint != self._client.base_url:
            log.info("Using the account's API endpoint %s", endpoint)
            self._client.base_url = endpoint
        self.account = info
        return info

    # -- address books --------------------------------------------------------------------
    def list_address_books(self) -> list[dict[str, Any]]:
        """Every address book of the account."""
        return list(self.iter_pages("/v2/address-books"))

    def get_address_book(self, book_id: int | str) -> dict[str, Any]:
        """One address book by id."""
        return self.call("GET", f"/v2/address-books/{book_id}")

    def create_address_book(self, name: str, visibility: str = "Private") -> dict[str, Any]:
        """Create an address book (``ERROR_ADDRESSBOOK_DUPLICATE`` when the name is taken)."""
        return self.call("POST", "/v2/address-books", json={"name": name, "visibility": visibility})

    def iter_address_book_contacts(self, book_id: int | str, full: bool = False) -> Iterator[dict[str, Any]]:
        """Contacts of an address book (``dataFields`` only with ``full``)."""
        return self.iter_pages(f"/v2/address-books/{book_id}/contacts", withFullData=str(full).lower())

    # -- contacts -------------------------------------------------------------------------
    def get_contact(self, identifier: str | int) -> dict[str, Any] | None:
        """A contact by email or id; None when Dotdigital does not know it."""
        try:
            return self.call("GET", f"/v2/contacts/{quote(str(identifier), safe='@')}")
        except DotdigitalError as exc:
            if exc.code == "ERROR_CONTACT_NOT_FOUND" or exc.status == 404:
                return None
            raise

    def add_contact_to_address_book(self, book_id: int | str, contact: dict[str, Any]) -> dict[str, Any]:
        """Add (or update) one contact in an address book; fires the book's join actions."""
        return self.call("POST", f"/v2/address-books/{book_id}/contacts", json=contact)

    def remove_contact(self, book_id: int | str, contact_id: int | str) -> None:
        """Remove one contact from an address book."""
        self.call("DELETE", f"/v2/address-books/{book_id}/contacts/{contact_id}")

    def bulk_remove(self, book_id: int | str, contact_ids: list[int]) -> dict[str, Any]:
        """Start removing many contacts from an address book; poll with :meth:`deletion_status`."""
        return self.call("POST", f"/v2/address-books/{book_id}/contacts/delete", json=contact_ids)

    def deletion_status(self, deletion_id: str) -> dict[str, Any]:
        """``{"id", "status": Started|Completed|Failed}`` of a bulk removal."""
        return self.call("GET", f"/v2/contacts/deletion/{deletion_id}")

    def unsubscribe(self, email: str, book_id: int | str | None = None) -> dict[str, Any]:
        """Unsubscribe a contact from one address book, or from the account when no book is given."""
        path = f"/v2/address-books/{book_id}/contacts/unsubscribe" if book_id else "/v2/contacts/unsubscribe"
        return self.call("POST", path, json={"email": email})

    def resubscribe(
        self,
        contact: dict[str, Any],
        book_id: int | str | None = None,
        no_challenge: bool = False,
        return_url: str | None = None,
    ) -> dict[str, Any]:
        """Resubscribe an unsubscribed contact (to a book, or the account); returns the result status."""
        base = f"/v2/address-books/{book_id}/contacts" if book_id else "/v2/contacts"
        path = f"{base}/resubscribe-with-no-challenge" if no_challenge else f"{base}/resubscribe"
        body: dict[str, Any] = {"unsubscribedContact": contact}
        if return_url and not no_challenge:
            body["returnUrlToUseIfChallenged"] = return_url
        return self.call("POST", path, json=body)

    # -- bulk import ----------------------------------------------------------------------
    @staticmethod
    def import_size_limit(book_id: int | str | None) -> int:
        """Largest file :meth:`import_contacts` may send to a book (or, without one, the account)."""
        return BOOK_IMPORT_MAX_BYTES if book_id else ACCOUNT_IMPORT_MAX_BYTES

    def import_contacts(
        self, path: Path | str, book_id: int | str | None = None, filename: str | None = None
    ) -> dict[str, Any]:
        """Upload a CSV file (multipart, with a file name) into a book or the account; 202 import."""
        target = f"/v2/address-books/{book_id}/contacts/import" if book_id else "/v2/contacts/import"
        path = Path(path)
        with path.open("rb") as handle:
            return self.call("POST", target, files={"file": (filename or path.name, handle, "text/csv")})

    def import_contacts_base64(
        self, data: bytes, filename: str, book_id: int | str | None = None
    ) -> dict[str, Any]:
        """The JSON form of :meth:`import_contacts` (``{"fileName", "data": base64}``)."""
        target = f"/v2/address-books/{book_id}/contacts/import" if book_id else "/v2/contacts/import"
        body = {"fileName": filename, "data": base64.b64encode(data).decode()}
        return self.call("POST", target, json=body)

    def import_status(self, import_id: str) -> dict[str, Any]:
        """``{"id", "status"}`` of a bulk import."""
        return self.call("GET", f"/v2/contacts/import/{import_id}")

    def import_report(self, import_id: str) -> dict[str, Any]:
        """Counts of a finished import (new, updated, invalid, suppressed, ...)."""
        return self.call("GET", f"/v2/contacts/import/{import_id}/report")

    def import_faults(self, import_id: str) -> str:
        """The CSV of the rows a finished import rejected (UTF-8, byte-order mark removed)."""
        content = self.request("GET", f"/v2/contacts/import/{import_id}/report-faults").content
        return content.decode("utf-8-sig", errors="replace")

    # -- data fields ----------------------------------------------------------------------
    def list_data_fields(self) -> list[dict[str, Any]]:
        """Every contact data field of the account."""
        return list(self.call("GET", "/v2/data-fields") or [])

    def create_data_field(
        self, name: str, type: str = "String", visibility: str = "Private", default: Any = None
    ) -> dict[str, Any] | None:
        """Create a contact data field."""
        body = {"name": name, "type": type, "visibility": visibility, "defaultValue": default}
        return self.call("POST", "/v2/data-fields", json=body)

    # -- changes since --------------------------------------------------------------------
    def iter_modified_since(
        self, since: datetime | str, book_id: int | str | None = None, full: bool = True
    ) -> Iterator[dict[str, Any]]:
        """Contacts created or changed since ``since`` (in one book, or the account)."""
        prefix = f"/v2/address-books/{book_id}/contacts" if book_id else "/v2/contacts"
        return self.iter_pages(f"{prefix}/modified-since/{api_date(since)}", withFullData=str(full).lower())

    def iter_unsubscribed_since(
        self, since: datetime | str, book_id: int | str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Contacts unsubscribed since ``since`` (``ApiContactSuppression`` records)."""
        prefix = f"/v2/address-books/{book_id}/contacts" if book_id else "/v2/contacts"
        return self.iter_pages(f"{prefix}/unsubscribed-since/{api_date(since)}")

    def iter_suppressed_since(self, since: datetime | str) -> Iterator[dict[str, Any]]:
        """Account-level suppressions since ``since``."""
        return self.iter_pages(f"/v2/contacts/suppressed-since/{api_date(since)}")

    def iter_campaigns_with_activity_since(self, since: datetime | str) -> Iterator[dict[str, Any]]:
        """Campaigns with any activity since ``since``."""
        return self.iter_pages(f"/v2/campaigns/with-activity-since/{api_date(since)}")

    def iter_campaign_activities(
        self, campaign_id: int | str, since: datetime | str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Per-contact send summaries of a campaign (all, or since a date)."""
        path = f"/v2/campaigns/{campaign_id}/activities"
        return self.iter_pages(f"{path}/since-date/{api_date(since)}" if since else path)

    def iter_campaign_opens(self, campaign_id: int | str, since: datetime | str) -> Iterator[dict[str, Any]]:
        """Opens of a campaign since ``since``."""
        return self.iter_pages(f"/v2/campaigns/{campaign_id}/opens/since-date/{api_date(since)}")

    def iter_campaign_clicks(self, campaign_id: int | str, since: datetime | str) -> Iterator[dict[str, Any]]:
        """Clicks of a campaign since ``since``."""
        return self.iter_pages(f"/v2/campaigns/{campaign_id}/clicks/since-date/{api_date(since)}")

    def server_time(self) -> str:
        """The API server's current UTC time."""
        return str(self.call("GET", "/v2/server-time"))


def import_status_of(dotdigital_conn_id: str, job_id: str) -> str:
    """The status of a bulk contact import (a status callable of ``triggers.bulk_job``)."""
    return str(DotdigitalHook(dotdigital_conn_id).import_status(job_id)["status"])


def deletion_status_of(dotdigital_conn_id: str, job_id: str) -> str:
    """The status of a bulk contact removal (a status callable of ``triggers.bulk_job``)."""
    return str(DotdigitalHook(dotdigital_conn_id).deletion_status(job_id)["status"])
