"""Salesforce Bulk API 2.0 on the official ``SalesforceHook``: ingest and query jobs, streamed.

The hook extends :class:`airflow.providers.salesforce.hooks.salesforce.SalesforceHook`: the
``salesforce`` connection (Username, Password, extras ``security_token``, ``domain``,
``consumer_key`` / ``consumer_secret``, ``instance_url``, ``version``, ...) is read by it and
simple-salesforce logs in. One optional extra is added, ``login_url``: the token endpoint's site
(a My Domain URL such as ``https://acme.my.salesforce.com``); with it the hook makes the OAuth 2.0
token request itself (``POST {login_url}/services/oauth2/token``, the username-password flow
with the consumer key and secret, or the client-credentials flow without a username) and hands
the access token and ``instance_url`` to simple-salesforce as a direct session.

The Bulk API 2.0 calls (``/services/data/vXX.X/jobs/ingest`` and ``jobs/query``) go through the
retrying client of this package with the session's token, not through simple-salesforce's
``bulk2``, because that client holds each upload as one string in memory, reads result files
whole, polls a job for up to 24 hours without a budget and keeps no job id a retry could find.
Here an upload streams a CSV file from disk (at most :data:`MAX_UPLOAD_BYTES`), result files and
query pages (``Sforce-Locator``) stream to disk, and every call draws on a shared call budget.

The budget follows Salesforce's daily API request allocation (a rolling 24 hours): a
:class:`~lytics_provider.pipeline.ratelimit.CallLedger` with a 24-hour window per connection,
user and direction (export or import; the seed's advice splits the allocation between the two),
limited to ``daily_api_calls``. Every answer's ``Sforce-Limit-Info: api-usage=used/total`` is
read: when the org's own count reaches its total, and on ``403 REQUEST_LIMIT_EXCEEDED``, every
task of the connection pauses for 24 hours (the seed: "it sleeps for 24 hours") and the task
stops with a retryable error. Salesforce error bodies are ``[{"errorCode": ..., "message": ...}]``.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import requests
from airflow.sdk.exceptions import AirflowFailException

try:
    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook
    from simple_salesforce import Salesforce, api
    from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceError
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "Salesforce jobs need apache-airflow-providers-salesforce: "
        "install airflow-provider-lytics[salesforce]"
    ) from exc

from lytics_provider.hooks.rest_errors import error_reader
from lytics_provider.hooks.task_errors import TASK_ERRORS
from lytics_provider.pipeline.http import HttpClient, RetryPolicy, ServiceError, redact
from lytics_provider.pipeline.ratelimit import CallLedger, RateLimitWaitTooLong, ledger_path
from lytics_provider.pipeline.workarea import safe_name

MAX_UPLOAD_BYTES = 100 * 1024 * 1024
"""One ``PUT .../batches``: 150 MB once base64-encoded, so at most 100 MB of CSV (Salesforce's advice)."""
DAY = 86400.0
DEFAULT_DAILY_API_CALLS = 15000
JOB_PENDING = ("Open", "UploadComplete", "InProgress")
JOB_DONE = "JobComplete"
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


class SalesforceAuthError(AirflowFailException):
    """Salesforce refused the connection's credentials; retrying does not help."""


class SalesforceJobFailed(AirflowFailException):
    """A Bulk API 2.0 job ended ``Failed`` (a bad header, an unknown field, no permission)."""


class ApiLimitReached(ServiceError):
    """The daily API request allocation is spent; the task resumes on retry after the pause."""


@error_reader(shapes=(dict, list))
def salesforce_error(body: Any) -> str | None:
    """The text of a Salesforce error body (``[{"errorCode": ..., "message": ...}]``, or OAuth's
    ``{"error": ..., "error_description": ...}``)."""
    if isinstance(body, list):
        return "; ".join(f"{e.get('errorCode')}: {e.get('message')}" for e in body if isinstance(e, dict))
    if body.get("error"):
        return f"{body['error']}: {body.get('error_description') or ''}"
    return str(body.get("message") or body)[:300]


def error_codes(response: requests.Response) -> set[str]:
    """The ``errorCode`` values of an error body."""
    try:
        body = response.json()
    except ValueError:
        return set()
    items = body if isinstance(body, list) else [body]
    return {str(e.get("errorCode")) for e in items if isinstance(e, dict) and e.get("errorCode")}


@dataclass
class QueryPage:
    """One page of a query job's results, written to ``path``."""

    path: Path
    records: int
    locator: str


class SalesforceBulkHook(SalesforceHook):
    """The official ``SalesforceHook`` with streamed, budgeted Bulk API 2.0 jobs.

    :param salesforce_conn_id: the ``salesforce`` connection.
    :param daily_api_calls: API requests this direction may make per rolling 24 hours on the
        connection (default: the extra ``daily_api_calls``, else 15,000).
    :param direction: ``export`` or ``import``; each has its own share of the daily allocation.
    :param retry_policy: how often and how long one call is retried (5xx, dropped connections).
    :param clock: the time the budget reads (tests pass a fake).
    :param sleep: how waits sleep (tests pass a fake).
    """

    def __init__(
        self,
        salesforce_conn_id: str = "salesforce_default",
        daily_api_calls: int | None = None,
        direction: str = "export",
        retry_policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(salesforce_conn_id=salesforce_conn_id)
        self.salesforce_conn_id = salesforce_conn_id
        self.daily_api_calls = daily_api_calls
        self.direction = direction
        self.retry_policy = retry_policy or RetryPolicy(sleep=sleep)
        self.clock = clock
        self.sleep = sleep
        self.api_usage: tuple[int, int] | None = None
        self._client: HttpClient | None = None
        self._ledger: CallLedger | None = None

    # -- login ---------------------------------------------------------------------------------
    @cached_property
    def connection(self) -> Any:
        return self.get_connection(self.salesforce_conn_id)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Everything that must never reach a log: password, token, secrets, the session id."""
        extras = self.connection.extra_dejson
        found = [self.connection.password or ""]
        found += [str(extras.get(k) or "") for k in ("security_token", "consumer_secret", "private_key")]
        if "conn" in self.__dict__:
            found.append(str(self.conn.session_id))
        return tuple(s for s in found if s)

    @cached_property
    def conn(self) -> api.Salesforce:
        """The simple-salesforce session (the official hook's, or a token login at ``login_url``)."""
        extras = self.connection.extra_dejson
        try:
            if extras.get("login_url"):
                return self._token_login(str(extras["login_url"]), extras)
            return super().conn
        except SalesforceAuthenticationFailed as exc:
            raise SalesforceAuthError(
                redact(
                    f"Salesforce refused the login of connection {self.salesforce_conn_id!r}: {exc}. "
                    "Check Username, Password and Security Token (or the consumer key and secret), "
                    "and that the user has the API Enabled permission.",
                    self.secrets,
                )
            ) from None

    def _token_login(self, login_url: str, extras: dict[str, Any]) -> api.Salesforce:
        session = requests.Session()
        data = {
            "client_id": extras.get("consumer_key") or "",
            "client_secret": extras.get("consumer_secret") or "",
        }
        if self.connection.login:
            data.update(
                grant_type="password",
                username=self.connection.login,
                password=(self.connection.password or "") + str(extras.get("security_token") or ""),
            )
        else:
            data["grant_type"] = "client_credentials"
        url = f"{login_url.rstrip('/')}/services/oauth2/token"
        try:
            answer = session.post(url, data=data, timeout=60)
        except requests.RequestException as exc:
            raise ServiceError(f"Cannot reach {url}: {type(exc).__name__}") from None
        if answer.status_code in (400, 401, 403):
            raise SalesforceAuthenticationFailed(answer.status_code, salesforce_error(answer))
        if answer.status_code >= 300:
            raise ServiceError(
                f"POST {url}: {answer.status_code} {salesforce_error(answer)}", answer.status_code
            )
        body = answer.json()
        return Salesforce(
            session_id=body["access_token"],
            instance_url=body["instance_url"],
            version=self._get_field(extras, "version") or api.DEFAULT_API_VERSION,
            session=session,
        )

    def _relogin(self) -> bool:
        """Log in again after a 401 (an expired session); True when a new token was obtained."""
        self.__dict__.pop("conn", None)
        sf = self.conn
        assert self._client is not None
        self._client.session.headers["Authorization"] = f"Bearer {sf.session_id}"
        self._client.secrets = self.secrets
        return True

    # -- budget and client ---------------------------------------------------------------------
    @property
    def ledger(self) -> CallLedger:
        """The shared daily call budget of this connection, user and direction."""
        if self._ledger is None:
            extras = self.connection.extra_dejson
            limit = self.daily_api_calls or int(extras.get("daily_api_calls") or DEFAULT_DAILY_API_CALLS)
            user = hashlib.sha256(str(self.connection.login or "").lower().encode()).hexdigest()[:16]
            key = f"{safe_name(self.salesforce_conn_id)}-{user}-{self.direction}"
            self._ledger = CallLedger(
                ledger_path(key), limit=limit, window=DAY, max_wait=0.0, clock=self.clock, sleep=self.sleep
            )
        return self._ledger

    def client(self) -> HttpClient:
        """The retrying client on ``https://{instance}/services/data/vXX.X`` (built once)."""
        if self._client is None:
            sf = self.conn
            self._client = HttpClient(
                base_url=f"https://{sf.sf_instance}/services/data/v{sf.sf_version}",
                headers={"Authorization": f"Bearer {sf.session_id}", "Accept": "application/json"},
                secrets=self.secrets,
                policy=self.retry_policy,
                before_call=self._before_call,
                after_response=self._after_response,
                error_message=salesforce_error,
                errors=TASK_ERRORS,
                context=f"connection {self.salesforce_conn_id!r}",
                auth_fix="Check the connection's user: it needs the API Enabled permission and access to "
                "the object and fields.",
                refresh_auth=self._relogin,
            )
        return self._client

    @property
    def calls(self) -> int:
        """API requests made so far (retries included)."""
        return self._client.calls if self._client else 0

    def _before_call(self) -> None:
        try:
            self.ledger.acquire()
        except RateLimitWaitTooLong as exc:
            raise ApiLimitReached(
                f"the {self.direction} share of the daily Salesforce API allocation of connection "
                f"{self.salesforce_conn_id!r} is spent ({exc}); the run stopped and resumes on retry"
            ) from None

    def _after_response(self, response: requests.Response) -> None:
        found = _USAGE.search(response.headers.get("Sforce-Limit-Info") or "")
        if found:
            used, total = int(found.group(1)), int(found.group(2))
            self.api_usage = (used, total)
            if used >= total:
                self.ledger.pause_until(self.clock() + DAY)
        if response.status_code == 403 and "REQUEST_LIMIT_EXCEEDED" in error_codes(response):
            self.ledger.pause_until(self.clock() + DAY)
            raise ApiLimitReached(
                f"Salesforce answered REQUEST_LIMIT_EXCEEDED (connection {self.salesforce_conn_id!r}): the "
                "org's daily API requests are spent; every task of the connection pauses for 24 hours",
                403,
            )

    # -- objects -------------------------------------------------------------------------------
    def describe(self, object_name: str) -> dict[str, Any]:
        """``GET /sobjects/{object}/describe``."""
        return dict(self.client().json("GET", f"/sobjects/{object_name}/describe"))

    def test_connection(self) -> tuple[bool, str]:
        """Log in and describe ``Account`` (the official hook's check), naming what is wrong."""
        try:
            fields = self.describe("Account").get("fields") or []
        except Exception as exc:
            with contextlib.suppress(Exception):
                return False, redact(f"{type(exc).__name__}: {exc}", self.secrets)
            return False, type(exc).__name__
        return True, f"Connected to Salesforce at {self.conn.sf_instance}: Account has {len(fields)} fields."

    # -- ingest jobs ---------------------------------------------------------------------------
    def create_ingest_job(
        self, object_name: str, operation: str, external_id_field: str | None
    ) -> dict[str, Any]:
        """``POST /jobs/ingest`` (CSV, comma, LF)."""
        body: dict[str, Any] = {
            "object": object_name,
            "operation": operation,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        }
        if external_id_field:
            body["externalIdFieldName"] = external_id_field
        return dict(self.client().json("POST", "/jobs/ingest", json=body))

    def upload(self, job_id: str, csv_file: Path) -> None:
        """``PUT /jobs/ingest/{id}/batches``, streaming the file (at most 100 MB)."""
        size = csv_file.stat().st_size
        if size > MAX_UPLOAD_BYTES:
            raise ValueError(f"{csv_file} is {size} bytes; one upload takes at most {MAX_UPLOAD_BYTES}")
        with csv_file.open("rb") as body:
            self.client().request(
                "PUT",
                f"/jobs/ingest/{job_id}/batches",
                data=body,
                headers={"Content-Type": "text/csv", "Content-Length": str(size)},
            )

    def set_state(self, job_id: str, state: str, kind: str = "ingest") -> dict[str, Any]:
        """``PATCH /jobs/{kind}/{id}`` with ``{"state": ...}`` (``UploadComplete`` or ``Aborted``)."""
        return dict(self.client().json("PATCH", f"/jobs/{kind}/{job_id}", json={"state": state}))

    def job(self, job_id: str, kind: str = "ingest") -> dict[str, Any]:
        """``GET /jobs/{kind}/{id}``."""
        return dict(self.client().json("GET", f"/jobs/{kind}/{job_id}"))

    def wait(self, job_id: str, kind: str, poll_interval: float, timeout: float) -> dict[str, Any]:
        """Poll a job until it leaves the pending states; a ``Failed`` job fails the task."""
        deadline = self.clock() + timeout
        pending = JOB_PENDING if kind == "ingest" else ("UploadComplete", "InProgress")
        while True:
            info = self.job(job_id, kind)
            state = str(info.get("state"))
            if state == JOB_DONE:
                return info
            if state not in pending:
                raise SalesforceJobFailed(
                    f"Salesforce {kind} job {job_id} ended {state}: "
                    f"{info.get('errorMessage') or 'no message'}"
                )
            if self.clock() >= deadline:
                raise ServiceError(
                    f"Salesforce {kind} job {job_id} still {state} after {timeout:.0f}s; a retry "
                    "reconnects to it"
                )
            self.sleep(poll_interval)

    def download(self, path: str, target: Path, params: dict[str, Any] | None = None) -> requests.Response:
        """Stream a CSV resource to ``target``; return the response (its headers)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + ".part")
        response = self.client().request(
            "GET", path, params=params, stream=True, headers={"Accept": "text/csv"}
        )
        with closing_response(response), partial.open("wb") as out:
            for chunk in response.iter_content(chunk_size=1 << 16):
                out.write(chunk)
        partial.replace(target)
        return response

    def ingest_results(self, job_id: str, kind: str, target: Path) -> Path:
        """``successfulResults`` or ``failedResults`` of an ingest job, streamed to ``target``."""
        self.download(f"/jobs/ingest/{job_id}/{kind}", target)
        return target

    # -- query jobs ----------------------------------------------------------------------------
    def create_query_job(self, soql: str, include_deleted: bool = False) -> dict[str, Any]:
        """``POST /jobs/query``."""
        body = {"operation": "queryAll" if include_deleted else "query", "query": soql}
        return dict(self.client().json("POST", "/jobs/query", json=body))

    def query_page(self, job_id: str, locator: str, target: Path, max_records: int) -> QueryPage:
        """One results page (``Sforce-Locator`` paging), streamed to ``target``."""
        params: dict[str, Any] = {"maxRecords": max_records}
        if locator:
            params["locator"] = locator
        response = self.download(f"/jobs/query/{job_id}/results", target, params)
        following = response.headers.get("Sforce-Locator") or ""
        records = int(response.headers.get("Sforce-NumberOfRecords") or 0)
        return QueryPage(target, records, "" if following == "null" else following)


@contextlib.contextmanager
def closing_response(response: requests.Response) -> Iterator[requests.Response]:
    """Close a streamed response when done."""
    try:
        yield response
    finally:
        response.close()


__all__ = [
    "MAX_UPLOAD_BYTES",
    "ApiLimitReached",
    "SalesforceAuthError",
    "SalesforceBulkHook",
    "SalesforceError",
    "SalesforceJobFailed",
    "salesforce_error",
]
