"""A retrying JSON-over-HTTP client shared by the service hooks.

Retries 429, 5xx and dropped connections with capped exponential backoff and jitter,
honours ``Retry-After`` (seconds or HTTP date), fails fast on 4xx (401/403 included),
counts every call it makes and never puts a secret in a log line or an exception.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
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


class AuthError(ServiceError):
    """401/403: credentials are wrong or lack permission; never retried."""


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
    auth: tuple[str, str] | None = None
    secrets: tuple[str, ...] = ()
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 121.0
    before_call: Callable[[], None] | None = None
    after_response: Callable[[requests.Response], None] | None = None
    error_message: Callable[[requests.Response], str] | None = None
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
        kwargs.setdefault("timeout", self.timeout)
        url = self.url(path)
        shown = redact(f"{method} {url.split('?')[0]}", self.secrets)
        attempt = 0
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
                wait = self.policy.backoff(attempt)
                log.warning(
                    "%s: %s (attempt %d/%d); retrying in %.1fs",
                    shown,
                    type(exc).__name__,
                    attempt,
                    self.policy.max_attempts,
                    wait,
                )
                self._rewind(kwargs)
                self.policy.sleep(wait)
                continue
            if self.after_response:
                self.after_response(response)
            if response.status_code < 400:
                return response
            message = self._message(response)
            if response.status_code in (401, 403):
                raise AuthError(f"{shown}: {response.status_code} {message}", response.status_code)
            if response.status_code in self.policy.statuses and attempt < self.policy.max_attempts:
                advised = parse_retry_after(response.headers.get("Retry-After"))
                wait = (
                    min(self.policy.max_delay, advised)
                    if advised is not None
                    else self.policy.backoff(attempt)
                )
                log.warning(
                    "%s: %d %s (attempt %d/%d); retrying in %.1fs",
                    shown,
                    response.status_code,
                    message[:200],
                    attempt,
                    self.policy.max_attempts,
                    wait,
                )
                self._rewind(kwargs)
                self.policy.sleep(wait)
                continue
            raise ServiceError(
                f"{shown}: {response.status_code} {message}", response.status_code, self._body(response)
            )

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a call and decode its JSON body."""
        return self.request(method, path, **kwargs).json()

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
