"""The REST hook base: connection, auth, paging, error envelope, call budget and Test button.

Writing a hook for a new REST API
---------------------------------
Subclass :class:`RestHook`, declare the connection and the API in class attributes, and write
the API verbs as methods over :meth:`RestHook.call` / :meth:`RestHook.paginate`::

    class AcmeHook(RestHook):
        \"\"\"Talk to Acme with the API key of an ``acme`` connection.\"\"\"

        conn_type = "acme"                   # conn_name_attr acme_conn_id, default_conn_name acme_default
        hook_name = "Acme"
        default_host = "https://api.acme.example"   # or regional_hosts = {"US": ..., "EU": ...}
        auth = Bearer()                      # or HttpBasic(), QueryApiKey("key"), OAuth2ClientCredentials()
        credentials_hint = "needs the Acme API key in Password."
        credentials_fix = "the Acme API key in Password, with the lists scope."
        paging = CursorPaging(next_key="meta.next", items_key="data")
        error_text = staticmethod(acme_error)   # an @error_reader of Acme's error body
        calls_per_hour = 3600                # a call budget shared by every task of the connection
        check_path = "/v1/me"                # a cheap authenticated GET for the UI's Test button

        def iter_lists(self) -> Iterator[dict[str, Any]]:
            return self.paginate("/v1/lists")

Then add the connection type to ``lytics_provider/connections.py`` (its form fields). The base
gives the hook: the constructor (``AcmeHook("acme_prod")`` or ``AcmeHook(acme_conn_id="acme_prod")``;
:attr:`conn_name_attr` and :attr:`default_conn_name` follow from :attr:`conn_type` unless declared),
the credential check (:attr:`credentials_hint` names the missing field), host /
scheme / port normalisation (Host may be a bare name; Schema picks http or https; Port is kept;
without Host, :attr:`default_host` or the region's URL of :attr:`regional_hosts`), the retrying
:class:`~lytics_provider.pipeline.http.HttpClient` with redaction and fail-fast 4xx (raised as
the task errors of ``hooks.task_errors``; a 401/403 ends with "Check connection ...:
:attr:`credentials_fix`"), :attr:`calls`, a shared
:class:`~lytics_provider.pipeline.ratelimit.CallLedger` when a budget is set (class attributes
:attr:`calls_per_hour` per :attr:`budget_window`, widened by :attr:`budget_margin` or
:attr:`budget_stretch`; the connection extras :attr:`budget_extra` and :attr:`window_extra`
override them; :meth:`side_budget` for a second limit) that a ``Retry-After`` on a 429/503, or a
429's :attr:`reset_header`, pauses for every task sharing it, and :meth:`test_connection`, which
Airflow's Test button calls: it makes one cheap authenticated call (:attr:`check_path`, its
answer summarised by :meth:`check_found`) and says whether the credentials were refused, the
host could not be reached, or the host answered something else (e.g. another region's endpoint),
never echoing a secret.

Modules beside this one: auth kinds in ``hooks.rest_auth``, paging styles in ``hooks.rest_paging``,
error envelopes in ``hooks.rest_errors``; for the API verbs and destination adapters built on a
hook, ``hooks.batched_lookup`` (calls limited to so many keys), ``hooks.bulk_jobs`` (jobs started,
kept in the plan and polled), ``hooks.list_lookup`` (a list by id or name), ``hooks.email_lists``
and ``hooks.field_mapping`` (list destinations keyed by email, their mapped fields) and
``hooks.size_groups`` (messages cut into calls by count and bytes).

Why not ``HttpHook``: the http provider's hook (``apache-airflow-providers-http``) is not a
dependency of this provider, its ``check_response`` logs the response body (member data in a
sync), and it has neither a shared call budget nor credential redaction; an ``http`` connection
still works as the source of a :class:`RestHook` (its host, schema, port, login and password are
read the same way).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import requests
from airflow.sdk import BaseHook

from lytics_provider.connections import ui_field_behaviour
from lytics_provider.hooks.rest_auth import AuthKind, Credentials, HttpBasic, OAuth2Token
from lytics_provider.hooks.rest_paging import OffsetPaging, Paging
from lytics_provider.hooks.rest_urls import base_url
from lytics_provider.hooks.task_errors import TASK_ERRORS
from lytics_provider.pipeline.http import (
    AuthError,
    ErrorTypes,
    HttpClient,
    RetryPolicy,
    ServiceError,
    parse_retry_after,
    redact,
)
from lytics_provider.pipeline.ratelimit import (
    CallLedger,
    RateLimitWaitTooLong,
    ledger_key,
    ledger_path,
    reset_time,
)

log = logging.getLogger(__name__)

TEST_TIMEOUT = 20.0

JSON_HEADERS: Mapping[str, str] = {"Accept": "application/json", "Content-Type": "application/json"}
"""``default_headers`` of an API that takes and answers JSON."""


class CallBudgetSpent(ServiceError):
    """The connection's call budget would free up only after the longest wait allowed."""


class RestHook(BaseHook):
    """Base of the REST API hooks: one connection, one retrying client, one call budget.

    :param conn_id: the Airflow connection id; also accepted as the keyword :attr:`conn_name_attr`
        (``<conn_type>_conn_id``), the way Airflow builds a connection's hook.
    :param retry_policy: how often and how long one call is retried (default
        :class:`~lytics_provider.pipeline.http.RetryPolicy`).
    :param ledger: the call budget to draw on (default: built from :attr:`calls_per_hour`).
    :param sleep: how the call budget waits (tests pass a fake).
    :param clock: the time the call budget reads (tests pass a fake).
    """

    conn_name_attr: ClassVar[str] = "rest_conn_id"
    default_conn_name: ClassVar[str] = "rest_default"
    conn_type: ClassVar[str] = "http"
    hook_name: ClassVar[str] = "REST API"

    default_host: ClassVar[str] = ""
    """API URL used when the connection has no Host."""
    regional_hosts: ClassVar[Mapping[str, str]] = {}
    """API URL by region (upper case; the first is the default), used when the connection has no
    Host and names its region in the extra :attr:`region_extra`."""
    region_extra: ClassVar[str] = "region"
    auth: ClassVar[AuthKind] = HttpBasic()
    """How the connection's secret is sent (``hooks.rest_auth``)."""
    credentials_hint: ClassVar[str] = "needs the API login in Login and the API password in Password."
    """Finishes "Connection 'x' ..." when :attr:`auth` finds a field empty."""
    default_headers: ClassVar[Mapping[str, str]] = {"Accept": "application/json"}
    paging: ClassVar[Paging] = OffsetPaging()
    """Paging style of :meth:`paginate` (``hooks.rest_paging``)."""
    error_text: ClassVar[Callable[[requests.Response], str] | None] = None
    """Reads the vendor's error body of a 4xx/5xx answer into the message (default: ``message``)."""
    ok_envelope: ClassVar[Callable[[Any], tuple[int, str] | None] | None] = None
    """Reads ``(status, message)`` of a 2xx body that is really an error; such a body is retried."""
    calls_per_hour: int | None = None
    """Client-side call budget per rolling window (connection extra ``calls_per_hour`` overrides)."""
    budget_window: float = 3600.0
    """Seconds of the budget's rolling window: one hour unless the vendor documents a shorter one
    (connection extra ``budget_window_seconds`` overrides)."""
    budget_margin: float = 0.0
    """Seconds added to the window: a call is counted when it leaves, the vendor counts it when it
    arrives, so a short fixed window at the vendor could otherwise see one call too many."""
    budget_stretch: float = 1.0
    """Factor the window is widened by, the same margin as a share of a window the connection may
    change (1.05: 5%)."""
    budget_extra: ClassVar[str] = "calls_per_hour"
    """The connection extra that overrides :attr:`calls_per_hour` (a vendor's own name for its limit,
    e.g. ``calls_per_interval``)."""
    window_extra: ClassVar[str] = "budget_window_seconds"
    """The connection extra that overrides :attr:`budget_window` ("" when the window is fixed)."""
    max_budget_wait: float = 3600.0
    """Longest one call waits for the budget before :meth:`budget_spent` is raised."""
    reset_header: ClassVar[str] = ""
    """Header of a 429 that says when the vendor's limit resets (epoch seconds or seconds from now,
    ``X-RateLimit-Reset``); every task of the connection pauses until then."""
    check_path: ClassVar[str] = ""
    """Cheap authenticated ``GET`` that :meth:`test_connection` makes."""
    check_params: ClassVar[Mapping[str, Any]] = {}
    """Query of the :attr:`check_path` call (e.g. a page size of one)."""
    credentials_fix: ClassVar[str] = ""
    """What to check in the connection when the API refuses its credentials (see :meth:`auth_fix`)."""
    errors: ClassVar[ErrorTypes] = TASK_ERRORS

    def __init__(
        self,
        conn_id: str | None = None,
        retry_policy: RetryPolicy | None = None,
        ledger: CallLedger | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        **named_conn_id: str,
    ) -> None:
        super().__init__()
        named = named_conn_id.pop(self.conn_name_attr, None)
        if named_conn_id:
            raise TypeError(
                f"{type(self).__name__}() got unexpected keyword arguments {sorted(named_conn_id)}"
            )
        setattr(self, self.conn_name_attr, conn_id or named or self.default_conn_name)
        self.retry_policy = retry_policy or RetryPolicy(sleep=sleep)
        self.ledger = ledger
        self.sleep = sleep
        self.clock = clock
        self.extra: dict[str, Any] = {}
        self.host_from_connection = False
        self._client: HttpClient | None = None
        self._side_ledgers: dict[str, CallLedger] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A hook that declares :attr:`conn_type` alone gets ``<conn_type>_conn_id`` as
        :attr:`conn_name_attr` and ``<conn_type>_default`` as :attr:`default_conn_name`."""
        super().__init_subclass__(**kwargs)
        if "conn_type" in cls.__dict__:
            if "conn_name_attr" not in cls.__dict__:
                cls.conn_name_attr = f"{cls.conn_type}_conn_id"
            if "default_conn_name" not in cls.__dict__:
                cls.default_conn_name = f"{cls.conn_type}_default"

    @property
    def conn_id(self) -> str:
        """The Airflow connection id."""
        return str(getattr(self, self.conn_name_attr))

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form layout (declared once in ``lytics_provider.connections``)."""
        return ui_field_behaviour(cls.conn_type)

    # -- connection -----------------------------------------------------------------------
    def get_conn(self) -> HttpClient:
        """Build (once) the HTTP client (and the shared call budget) from the Airflow connection."""
        if self._client is not None:
            return self._client
        conn = self.get_connection(self.conn_id)
        credentials = self.auth.credentials(conn)
        if credentials is None:
            raise ValueError(f"Connection {self.conn_id!r} {self.credentials_hint}")
        if isinstance(credentials.requests_auth, OAuth2Token):
            credentials.requests_auth.errors = self.errors
        self.extra = dict(conn.extra_dejson)
        self.validate_extra()
        self.host_from_connection = bool(conn.host)
        host = base_url(conn.host, conn.schema, conn.port) if conn.host else self.default_api_url()
        budget, window = self.call_budget()
        if self.ledger is None and budget:
            self.ledger = CallLedger(
                ledger_path(ledger_key(self.conn_id, credentials.identity)),
                limit=budget,
                window=window + self.budget_margin,
                max_wait=self.max_budget_wait,
                clock=self.clock,
                sleep=self.sleep,
            )
        client = HttpClient(
            base_url=host,
            headers={**self.default_headers, **self.connection_headers(), **credentials.headers},
            auth=credentials.requests_auth,
            secrets=credentials.secrets,
            policy=self.connection_policy(),
            before_call=self._before_call if self.ledger is not None else None,
            after_response=self._after_response,
            error_message=type(self).error_text,
            errors=self.errors,
            context=f"connection {self.conn_id!r}",
            auth_fix=self.auth_fix(),
            envelope=type(self).ok_envelope,
            refresh_auth=credentials.refresh,
        )
        self.configure_client(client, credentials)
        self._client = client
        return client

    def validate_extra(self) -> None:
        """Check the connection's extras (:attr:`extra`); raise ``ValueError`` naming the field to fix."""

    def call_budget(self) -> tuple[int | None, float]:
        """``(calls, window seconds)`` of the shared call budget: :attr:`calls_per_hour` (the extra
        :attr:`budget_extra` overrides it) per :meth:`budget_window_seconds`, widened by
        :attr:`budget_stretch`. ``(None, ...)`` sets no budget."""
        budget = self.extra.get(self.budget_extra) or self.calls_per_hour
        return (int(budget) if budget else None), self.budget_window_seconds() * self.budget_stretch

    def budget_window_seconds(self) -> float:
        """Seconds of the vendor's window: :attr:`budget_window`, or the extra :attr:`window_extra`."""
        return float((self.extra.get(self.window_extra) if self.window_extra else None) or self.budget_window)

    def default_api_url(self) -> str:
        """The API URL when the connection has no Host: the region's of :attr:`regional_hosts`, else
        :attr:`default_host`."""
        if self.regional_hosts:
            region = str(self.extra.get(self.region_extra) or next(iter(self.regional_hosts)))
            region = region.strip().upper()
            if region not in self.regional_hosts:
                raise ValueError(
                    f"Connection {self.conn_id!r}: {self.region_extra} {region!r} must be "
                    f"{' or '.join(self.regional_hosts)}"
                )
            return self.regional_hosts[region]
        if not self.default_host:
            raise ValueError(f"Connection {self.conn_id!r} needs the API URL in Host.")
        return self.default_host

    def connection_headers(self) -> dict[str, str]:
        """Headers the connection's extras add to every call (none by default)."""
        return {}

    def connection_policy(self) -> RetryPolicy:
        """The retry policy, with the extra ``max_attempts`` applied when set."""
        if self.extra.get("max_attempts"):
            return dataclasses.replace(
                self.retry_policy, max_attempts=max(1, int(self.extra["max_attempts"]))
            )
        return self.retry_policy

    def auth_fix(self) -> str:
        """What to check when the API refuses the credentials (ends every 401/403 message):
        ``Check connection '<id>': <credentials_fix>``, nothing without :attr:`credentials_fix`."""
        return f"Check connection {self.conn_id!r}: {self.credentials_fix}" if self.credentials_fix else ""

    def configure_client(self, client: HttpClient, credentials: Credentials) -> None:
        """Finish the new client (extras the hook reads, proxy settings); nothing by default."""

    @property
    def calls(self) -> int:
        """HTTP calls made so far, retries included."""
        return self._client.calls if self._client else 0

    # -- call budget ----------------------------------------------------------------------
    def _before_call(self) -> None:
        assert self.ledger is not None
        self.draw(self.ledger)

    def draw(self, ledger: CallLedger) -> None:
        """Take one call from ``ledger``; :meth:`budget_spent` when it does not free up in time."""
        try:
            ledger.acquire()
        except RateLimitWaitTooLong as exc:
            raise self.budget_spent(exc) from None

    def side_budget(self, name: str, identity: str, limit: int, window: float) -> None:
        """Take one call from a second budget of the connection, shared by every task like the
        first (a per-second burst, an endpoint's own limit).

        :param name: the budget's name (``burst``, ``search``).
        :param identity: who the calls run as (keys the budget with the connection id).
        :param limit: calls per window.
        :param window: seconds of the window.
        """
        ledger = self._side_ledgers.get(name)
        if ledger is None:
            path = ledger_path(ledger_key(f"{self.conn_id}-{name}", identity))
            ledger = CallLedger(path, limit=limit, window=window, clock=self.clock, sleep=self.sleep)
            self._side_ledgers[name] = ledger
        self.draw(ledger)

    def budget_spent(self, exc: RateLimitWaitTooLong) -> Exception:
        """The error raised when the call budget does not free up in time."""
        return CallBudgetSpent(
            f"{self.hook_name} call budget of connection {self.conn_id!r} is spent: {exc}. The run "
            "stopped before sending more; it resumes on retry."
        )

    def _after_response(self, response: requests.Response) -> None:
        """A ``Retry-After`` on a 429/503, and a 429's :attr:`reset_header`, pause every user of the
        shared call budget."""
        if self.ledger is None or response.status_code not in (429, 503):
            return
        wait = parse_retry_after(response.headers.get("Retry-After"), self.clock())
        if wait:
            self.ledger.pause_until(self.clock() + wait)
        if self.reset_header and response.status_code == 429:
            when = reset_time(response.headers.get(self.reset_header) or "", self.clock())
            if when:
                self.ledger.pause_until(when)

    # -- calls ----------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One API call (retried, budgeted); the final 2xx response."""
        return self.get_conn().request(method, path, **kwargs)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API call returning its decoded JSON body (a 2xx error envelope is retried)."""
        return self.get_conn().json(method, path, **kwargs)

    def get_page(self, path: str, params: dict[str, Any]) -> tuple[Any, Mapping[str, str]]:
        """One page for :meth:`paginate`: the decoded body and the response headers."""
        client = self.get_conn()
        return client.fetch("GET", path, lambda r: (client._read_json(r), r.headers), params=params)

    def paginate(
        self, path: str, params: Mapping[str, Any] | None = None, paging: Paging | None = None, **changes: Any
    ) -> Iterator[Any]:
        """Every item of a paged collection (``changes`` adjust :attr:`paging`, e.g. ``items_key``)."""
        style = paging or self.paging
        if changes:
            style = dataclasses.replace(style, **changes)  # type: ignore[type-var]
        for page in style.pages(self.get_page, path, dict(params or {})):
            yield from page

    # -- Test button ----------------------------------------------------------------------
    def check_call(self) -> str:
        """The cheap authenticated call of :meth:`test_connection`; returns what it found."""
        if not self.check_path:
            raise NotImplementedError(f"{type(self).__name__} declares no check_path")
        return self.check_found(self.call("GET", self.check_path, params=dict(self.check_params) or None))

    def check_found(self, body: Any) -> str:
        """What the Test button reports of the :attr:`check_path` answer (default: that it answered)."""
        return f"GET {self.check_path} answered"

    def test_connection(self) -> tuple[bool, str]:
        """Make one cheap authenticated call and say what is wrong, if anything.

        Airflow's connection form calls this for its Test button. The answer names the failure:
        a missing field, refused credentials (401/403), an unreachable host, or another answer;
        it never contains a secret.
        """
        try:
            client = self.get_conn()
        except Exception as exc:  # a missing field, an unknown connection: the form shows why
            return False, str(exc)
        saved = client.policy, client.timeout
        client.policy = dataclasses.replace(client.policy, max_attempts=1)
        client.timeout = min(client.timeout, TEST_TIMEOUT)
        where = client.base_url
        try:
            found = self.check_call()
        except AuthError as exc:
            return False, redact(
                f"{self.hook_name} at {where} refused the credentials of connection {self.conn_id!r} "
                f"({exc.status}). {self.refused_hint(exc)}",
                client.secrets,
            )
        except ServiceError as exc:
            if exc.status is None:
                return False, redact(
                    f"Cannot reach {where} (connection {self.conn_id!r}): check the Host, Schema and Port, "
                    f"and that this worker can reach it. {exc}",
                    client.secrets,
                )
            return False, redact(
                f"{where} answered {exc.status} (connection {self.conn_id!r}): is Host this service's API "
                f"URL? {exc}",
                client.secrets,
            )
        except (requests.RequestException, ValueError) as exc:
            return False, redact(
                f"{where} (connection {self.conn_id!r}): {type(exc).__name__}: {exc}", client.secrets
            )
        finally:
            client.policy, client.timeout = saved
        return True, redact(f"Connected to {self.hook_name} at {where}: {found}.", client.secrets)

    def refused_hint(self, exc: AuthError) -> str:
        """What to fix when the check call is refused (default: :meth:`auth_fix`)."""
        return self.auth_fix() or "Check the credentials in the connection."
