"""Auth kinds of the REST hook base: how a connection's secret rides on every request.

A vendor hook names one kind as a class attribute (``auth = HttpBasic()``); the base calls
:meth:`AuthKind.credentials` with the Airflow connection and gets a :class:`Credentials`: the
headers to send, an optional ``requests`` auth object, the secrets to redact from every message
and, for OAuth2, a ``refresh`` callable the client calls once on a 401. A kind returns None when
the connection lacks a field it needs; the hook then raises its own "put X in field Y" error.

Kinds: :class:`HttpBasic` (Login + Password), :class:`BasicApiKey` (Password as the Basic password),
:class:`HeaderToken` (Password as a header value,
raw or with a prefix; :func:`Bearer`), :class:`HeaderCredentials` (Login and Password in two
named headers), :class:`QueryApiKey` (Password as a query parameter) and
:class:`OAuth2ClientCredentials` (Login = client id, Password = client secret, extra
``token_url``; the token is cached until shortly before it expires, fetched again on a 401, and
never logged or shown) and :class:`HostOAuth2ClientCredentials` (the same, at a token path of
the connection's Host).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
from requests.auth import AuthBase

from lytics_provider.hooks.rest_urls import base_url
from lytics_provider.pipeline.http import ErrorTypes, ServiceError, redact


@dataclass(frozen=True)
class Credentials:
    """What an auth kind adds to a client built from one connection."""

    headers: Mapping[str, str] = field(default_factory=dict)
    requests_auth: AuthBase | tuple[str, str] | None = None
    secrets: tuple[str, ...] = ()
    refresh: Callable[[], bool] | None = None
    identity: str = ""
    """Who the calls run as (a login or client id, never a secret); keys the shared call budget."""


class AuthKind(Protocol):
    """Builds :class:`Credentials` from a connection; None when a needed field is empty."""

    def credentials(self, conn: Any) -> Credentials | None: ...


@dataclass(frozen=True)
class HttpBasic:
    """HTTP Basic with the connection's Login and Password."""

    def credentials(self, conn: Any) -> Credentials | None:
        login, password = conn.login or "", conn.password or ""
        if not login or not password:
            return None
        return Credentials(requests_auth=(login, password), secrets=(password,), identity=login)


@dataclass(frozen=True)
class BasicApiKey:
    """HTTP Basic with the connection's Password as the password and any user name (Login, else
    ``user``): APIs whose key is the Basic password (Mailchimp)."""

    user: str = "lytics"

    def credentials(self, conn: Any) -> Credentials | None:
        key = conn.password or ""
        if not key:
            return None
        return Credentials(
            requests_auth=(conn.login or self.user, key),
            secrets=(key,),
            identity=hashlib.sha256(key.encode()).hexdigest()[:16],
        )


@dataclass(frozen=True)
class HeaderToken:
    """The connection's Password sent as one header (``prefix`` + token; Lytics: raw, no prefix)."""

    header: str = "Authorization"
    prefix: str = ""

    def credentials(self, conn: Any) -> Credentials | None:
        token = conn.password or ""
        if not token:
            return None
        return Credentials(headers={self.header: f"{self.prefix}{token}"}, secrets=(token,), identity="token")


def Bearer() -> HeaderToken:
    """``Authorization: Bearer <Password>``."""
    return HeaderToken("Authorization", "Bearer ")


@dataclass(frozen=True)
class HeaderCredentials:
    """Login and Password in two named headers (iContact: ``API-Username`` / ``API-Password``)."""

    login_header: str
    password_header: str

    def credentials(self, conn: Any) -> Credentials | None:
        login, password = conn.login or "", conn.password or ""
        if not login or not password:
            return None
        headers = {self.login_header: login, self.password_header: password}
        return Credentials(headers=headers, secrets=(password,), identity=login)


class _QueryParam(AuthBase):
    """Adds ``name=value`` to the query of every request (the URL shown in errors drops the query)."""

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self._value = value

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        parts = urlsplit(request.url or "")
        extra = urlencode({self.name: self._value})
        query = f"{parts.query}&{extra}" if parts.query else extra
        request.url = urlunsplit(parts._replace(query=query))
        return request

    def __repr__(self) -> str:
        return f"_QueryParam({self.name!r}, '***')"


@dataclass(frozen=True)
class QueryApiKey:
    """The connection's Password as a query parameter (``?api_key=...``)."""

    param: str = "api_key"

    def credentials(self, conn: Any) -> Credentials | None:
        key = conn.password or ""
        if not key:
            return None
        return Credentials(requests_auth=_QueryParam(self.param, key), secrets=(key,), identity="key")


class OAuth2Token(AuthBase):
    """A cached OAuth2 client-credentials access token, sent as ``Authorization: Bearer``.

    The token is fetched on first use, fetched again when it is within ``margin`` seconds of
    ``expires_in`` and when :meth:`refresh` is called (the client does so once on a 401). It is
    kept only in this object: ``repr`` hides it, and token-endpoint errors are redacted.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str = "",
        params: Mapping[str, str] | None = None,
        client_auth: str = "basic",
        margin: float = 30.0,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self.scope = scope
        self.params = dict(params or {})
        self.client_auth = client_auth
        self.margin = margin
        self.timeout = timeout
        self.clock = clock
        self.errors = ErrorTypes()
        self.verify: bool | str = True
        """TLS verification of the token endpoint: True, or the path of a CA bundle."""
        self.fetches = 0
        self.answer: dict[str, Any] = {}
        """The token endpoint's last answer without the token (instance URLs, scope, expiry)."""
        self._token = ""
        self._expires_at = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OAuth2Token(token_url={self.token_url!r}, client_id={self.client_id!r})"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request

    def token(self) -> str:
        """The cached access token, fetched when missing or about to expire."""
        with self._lock:
            if not self._token or self.clock() >= self._expires_at - self.margin:
                self._fetch()
            return self._token

    def refresh(self) -> bool:
        """Drop the cached token and fetch a new one (True: the call may be retried)."""
        with self._lock:
            self._token = ""
            self._fetch()
        return True

    def _fetch(self) -> None:
        data = {"grant_type": "client_credentials", **self.params}
        if self.scope:
            data["scope"] = self.scope
        auth: tuple[str, str] | None = (self.client_id, self._secret)
        payload: dict[str, Any] = {"data": data}
        if self.client_auth in ("body", "json"):
            data.update(client_id=self.client_id, client_secret=self._secret)
            auth = None
        if self.client_auth == "json":
            payload = {"json": data}
        shown = f"OAuth2 token endpoint {self.token_url.split('?')[0]}"
        self.fetches += 1
        try:
            response = requests.post(
                self.token_url,
                **payload,
                auth=auth,
                timeout=self.timeout,
                headers={"Accept": "application/json"},
                verify=self.verify,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise ServiceError(f"{shown}: unreachable ({type(exc).__name__})") from None
        if response.status_code in (400, 401, 403):
            text = redact(response.text[:300], (self._secret,))
            raise self.errors.auth(
                f"{shown} refused client id {self.client_id!r} ({response.status_code}): {text}. Check the "
                "client id (Login), client secret (Password) and scope.",
                response.status_code,
            )
        if response.status_code >= 400:
            raise ServiceError(f"{shown}: {response.status_code}", response.status_code)
        try:
            body = response.json()
            token = str(body["access_token"])
        except (ValueError, KeyError, TypeError):
            raise ServiceError(f"{shown}: the answer has no access_token") from None
        expires_in = body.get("expires_in")
        try:
            lifetime = float(expires_in) if expires_in not in (None, "") else 3600.0
        except (TypeError, ValueError):
            lifetime = 3600.0
        self._token = token
        self._expires_at = self.clock() + lifetime
        self.answer = {k: v for k, v in body.items() if k not in ("access_token", "refresh_token")}


def token_credentials(token: OAuth2Token) -> Credentials:
    """The :class:`Credentials` of a client-credentials token: sent as Bearer, its secret redacted,
    refreshed on a 401, the budget keyed by the client id."""
    return Credentials(
        requests_auth=token, secrets=(token._secret,), refresh=token.refresh, identity=token.client_id
    )


@dataclass(frozen=True)
class OAuth2ClientCredentials:
    """OAuth2 client credentials: Login = client id, Password = client secret, extras
    ``token_url`` (else ``token_url`` here), ``scope`` and ``client_auth`` (``basic``, ``body`` or
    ``json``: the id and secret in a JSON body)."""

    token_url: str = ""
    scope: str = ""

    def credentials(self, conn: Any) -> Credentials | None:
        extra = conn.extra_dejson
        client_id, secret = conn.login or "", conn.password or ""
        token_url = str(extra.get("token_url") or self.token_url)
        if not client_id or not secret or not token_url:
            return None
        token = OAuth2Token(
            token_url,
            client_id,
            secret,
            scope=str(extra.get("scope") or self.scope),
            params=self.token_params(extra),
            client_auth=str(extra.get("client_auth") or "basic"),
        )
        return token_credentials(token)

    def token_params(self, extra: Mapping[str, Any]) -> Mapping[str, str]:
        """More fields of the token request, from the connection's extras (none by default)."""
        return {}


@dataclass(frozen=True)
class HostOAuth2ClientCredentials:
    """OAuth2 client credentials at ``<Host><token_path>``: Login = client id, Password = client
    secret; a connection without Host, Login or Password has none.

    :param token_path: the token endpoint's path on the Host.
    :param client_auth: how the id and secret are sent (``basic``, ``body`` or ``json``).
    :param margin: seconds before expiry that a token is fetched again.
    :param param_extras: extras sent in the token request under their own names when set.
    """

    token_path: str
    client_auth: str = "basic"
    margin: float = 30.0
    param_extras: tuple[str, ...] = ()

    def credentials(self, conn: Any) -> Credentials | None:
        client_id, secret, host = conn.login or "", conn.password or "", conn.host or ""
        if not client_id or not secret or not host:
            return None
        extra = conn.extra_dejson
        params = {name: str(extra[name]) for name in self.param_extras if extra.get(name)}
        token = OAuth2Token(
            base_url(host, conn.schema, conn.port).rstrip("/") + self.token_path,
            client_id,
            secret,
            params=params or None,
            client_auth=self.client_auth,
            margin=self.margin,
        )
        return token_credentials(token)
