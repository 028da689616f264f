"""A retrying JSON-over-HTTP client shared by the service hooks.

Retries 429, 5xx, dropped connections and 2xx bodies that cannot be used (a JSON body cut
short, an error envelope; see :meth:`HttpClient.fetch`) with capped exponential backoff and
jitter, honours ``Retry-After`` (seconds or HTTP date), fails fast on 4xx (401/403 included),
counts every call it makes and never puts a secret in a log line or an exception.

400/401/403/404/422 raise :class:`PermanentServiceError` (401/403: :class:`AuthError`): the
request itself is wrong and no retry can fix it. This module imports nothing from Airflow (the
scan fetcher's child process uses it); a hook that runs in an Airflow task passes
:class:`ErrorTypes` whose classes are also ``AirflowFailException`` (``hooks.task_errors``), so
the task fails without Airflow retries.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
PERMANENT_STATUSES = frozenset({400, 401, 403, 404, 422})
_CONNECTION_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class ServiceError(Exception):
    """An HTTP call that failed for good; ``status`` is None for connection failures."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class PermanentServiceError(ServiceError):
    """400/401/403/404/422: the request itself is wrong (unknown object, bad input); never retried."""


class AuthError(PermanentServiceError):
    """401/403: credentials are wrong or lack permission; never retried."""


class UnusableBody(Exception):
    """A 2xx response whose body cannot be used and should be fetched again (raised by a reader).

    ``status`` is the status the body itself reports (an error envelope), if any.
    """

    def __init__(self, problem: str, status: int | None = None) -> None:
        super().__init__(problem)
        self.status = status


@dataclass(frozen=True)
class ErrorTypes:
    """The classes an :class:`HttpClient` raises for errors that no retry can fix."""

    permanent: type[PermanentServiceError] = PermanentServiceError
    auth: type[AuthError] = AuthError


def read_json(response: requests.Response) -> Any:
    """The decoded JSON body; a body that does not decode is :class:`UnusableBody` (fetched again)."""
    try:
        return response.json()
    except ValueError:
        raise UnusableBody(body_cut_short(len(response.content))) from None


def body_cut_short(size: int) -> str:
    """How an undecodable 2xx body is named in warnings and errors."""
    return f"body cut short after {size} bytes (not complete JSON)"


def error_envelope(body: Any) -> tuple[int, str] | None:
    """``(status, message)`` of a 2xx body that is an error envelope
    (``{"status": >=400, "message": ..., "data": null}``), else None."""
    if not isinstance(body, dict) or body.get("data") is not None:
        return None
    status = body.get("status")
    if isinstance(status, int) and not isinstance(status, bool) and status >= 400:
        return status, str(body.get("message") or "")
    return None


@dataclass
class RetryPolicy:
    """How often and how long to retry one call."""

    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 60.0
    statuses: frozenset[int] = RETRY_STATUSES
    sleep: Callable[[float], None] = time.sleep

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff for the given 1-based attempt."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret in ``text`` with ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


@dataclass
class HttpClient:
    """A ``requests.Session`` wrapper with retries, call counting and redaction."""

    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    auth: tuple[str, str] | requests.auth.AuthBase | None = None
    secrets: tuple[str, ...] = ()
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 121.0
    before_call: Callable[[], None] | None = None
    after_response: Callable[[requests.Response], None] | None = None
    error_message: Callable[[requests.Response], str] | None = None
    errors: ErrorTypes = field(default_factory=ErrorTypes)
    context: str = ""
    auth_fix: str = ""
    error_envelopes: bool = False
    envelope: Callable[[Any], tuple[int, str] | None] | None = None
    refresh_auth: Callable[[], bool] | None = None
    calls: int = 0

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update(dict(self.headers))
        if self.auth:
            self.session.auth = self.auth

    def url(self, path: str) -> str:
        """Absolute URL for ``path`` (absolute URLs pass through)."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send one logical call, retrying transient failures; return the final response."""
        return self.fetch(method, path, _as_is, **kwargs)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a call and decode its JSON body; a body cut short (and, with ``error_envelopes``,
        a 2xx error envelope, as ``envelope`` reads it) is fetched again like a 503."""
        return self.fetch(method, path, self._read_json, **kwargs)

    def fetch(self, method: str, path: str, read: Callable[[requests.Response], T], **kwargs: Any) -> T:
        """Send one logical call and return ``read(response)`` for its 2xx response.

        Retries 429/5xx and dropped connections; ``read`` raising :class:`UnusableBody` is
        retried the same way and, on the last attempt, becomes a :class:`ServiceError` naming
        what the API sent. 400/401/403/404/422 raise ``errors.permanent`` / ``errors.auth``; a 401
        is sent again once when ``refresh_auth`` renews the credentials (an expired OAuth2 token).
        """
        kwargs.setdefault("timeout", self.timeout)
        url = self.url(path)
        shown = redact(f"{method} {url.split('?')[0]}", self.secrets)
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            if self.before_call:
                self.before_call()
            self.calls += 1
            try:
                response = self.session.request(method, url, **kwargs)
            except _CONNECTION_ERRORS as exc:
                if attempt >= self.policy.max_attempts:
                    raise ServiceError(f"{shown}: connection failed after {attempt} attempts") from None
                self._wait(shown, type(exc).__name__, attempt, None, kwargs)
                continue
            if self.after_response:
                self.after_response(response)
            if response.status_code < 400:
                try:
                    return read(response)
                except UnusableBody as exc:
                    problem = redact(str(exc)[:500], self.secrets)
                    if attempt >= self.policy.max_attempts:
                        raise ServiceError(
                            f"{shown}: {response.status_code} answer unusable after {attempt} attempts: "
                            f"{problem}",
                            exc.status,
                            problem,
                        ) from None
                    self._wait(shown, f"{response.status_code} {problem}", attempt, None, kwargs)
                    continue
            message = self._message(response)
            status = response.status_code
            if status == 401 and self.refresh_auth and not refreshed:
                refreshed = True
                if self.refresh_auth():
                    log.warning("%s: 401; renewed the credentials and sending again", shown)
                    self._rewind(kwargs)
                    continue
            if status in (401, 403):
                fix = f". {self.auth_fix}" if self.auth_fix else ""
                raise self.errors.auth(f"{shown}: {status} {message}{self._where()}{fix}", status)
            if status in PERMANENT_STATUSES:
                raise self.errors.permanent(
                    f"{shown}: {status} {message}{self._where()} (not retried: the request itself is wrong)",
                    status,
                    self._body(response),
                )
            if status in self.policy.statuses and attempt < self.policy.max_attempts:
                advised = parse_retry_after(response.headers.get("Retry-After"))
                self._wait(shown, f"{status} {message[:200]}", attempt, advised, kwargs)
                continue
            raise ServiceError(f"{shown}: {status} {message}", status, self._body(response))

    def _wait(
        self, shown: str, what: str, attempt: int, advised: float | None, kwargs: dict[str, Any]
    ) -> None:
        """Log a transient failure and sleep before the next attempt."""
        wait = min(self.policy.max_delay, advised) if advised is not None else self.policy.backoff(attempt)
        log.warning(
            "%s: %s (attempt %d/%d); retrying in %.1fs", shown, what, attempt, self.policy.max_attempts, wait
        )
        self._rewind(kwargs)
        self.policy.sleep(wait)

    def _where(self) -> str:
        return f" ({self.context})" if self.context else ""

    def _read_json(self, response: requests.Response) -> Any:
        body = read_json(response)
        check = self.envelope or (error_envelope if self.error_envelopes else None)
        if check is not None:
            envelope = check(body)
            if envelope is not None:
                status, message = envelope
                raise UnusableBody(f"error envelope: status {status}, message {message!r}", status)
        return body

    def _message(self, response: requests.Response) -> str:
        if self.error_message:
            text = self.error_message(response)
        else:
            body = self._body(response)
            text = body.get("message", "") if isinstance(body, dict) else str(body or "")
        return redact(str(text)[:500], self.secrets)

    @staticmethod
    def _body(response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return response.text[:500]

    @staticmethod
    def _rewind(kwargs: dict[str, Any]) -> None:
        """Seek a file-like request body back to the start before a retry."""
        body = kwargs.get("data")
        if hasattr(body, "seek"):
            body.seek(0)

    def settle_environment(self) -> None:
        """Read proxy and CA settings from the environment once instead of on every request.

        ``requests`` re-reads the proxy variables for each call when ``trust_env`` is on, which
        costs more than the call itself on a loopback scan of 100-member pages.
        """
        session = self.session
        settings = session.merge_environment_settings(self.base_url, {}, None, None, None)
        session.proxies.update(settings.get("proxies") or requests.utils.get_environ_proxies(self.base_url))
        session.verify = settings.get("verify", True)
        if settings.get("cert"):
            session.cert = settings["cert"]
        session.trust_env = False

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()


def _as_is(response: requests.Response) -> requests.Response:
    return response
