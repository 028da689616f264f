"""The REST hook base against a loopback server: auth kinds, paging styles, error envelopes, the
shared call budget with ``Retry-After``, and ``test_connection``."""

from __future__ import annotations

import base64
import itertools
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from lytics_provider.hooks.rest import RestHook
from lytics_provider.hooks.rest_auth import (
    Bearer,
    HeaderCredentials,
    HeaderToken,
    HttpBasic,
    OAuth2ClientCredentials,
    QueryApiKey,
)
from lytics_provider.hooks.rest_paging import (
    CursorPaging,
    LinkPaging,
    OffsetPaging,
    PagingError,
    skip_select,
)
from lytics_provider.hooks.task_errors import AuthTaskError, PermanentTaskError
from lytics_provider.pipeline.http import RetryPolicy, ServiceError
from lytics_provider.pipeline.ratelimit import CallLedger
from lytics_sandbox.faults import FaultRule
from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer, json_response

SECRET = "s3cret-value-that-must-not-leak"
ITEMS = [{"id": i} for i in range(23)]


class PartnerServer(SandboxHTTPServer):
    """A REST partner: one collection in four paging styles, an OAuth2 token endpoint whose
    tokens the server can expire, and an error envelope ``{"error": {"code", "detail"}}``."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens: set[str] = set()
        self.token_lifetime = 3600
        self._serial = itertools.count(1)
        self._lock = threading.Lock()
        self.seen_auth: list[tuple[str | None, dict[str, str]]] = []
        self.add_route("POST", r"/oauth/token", self._token, "token")
        self.add_route("GET", r"/v1/me", self._me, "me")
        self.add_route("GET", r"/v1/offset", self._offset, "offset")
        self.add_route("GET", r"/v1/skip", self._skip, "skip")
        self.add_route("GET", r"/v1/cursor", self._cursor, "cursor")
        self.add_route("GET", r"/v1/link", self._link, "link")
        self.add_route("GET", r"/v1/next-in-body", self._next_in_body, "next_in_body")
        self.add_route("GET", r"/v1/stuck", self._stuck, "stuck")
        self.add_route("GET", r"/v1/bad", self._bad, "bad")
        self.add_route("GET", r"/v1/enveloped", self._enveloped, "enveloped")
        self.enveloped_failures = 0

    # -- auth ----------------------------------------------------------------------------------
    def _token(self, request: Request) -> Response:
        header = request.header("Authorization") or ""
        user, _, password = base64.b64decode(header.partition(" ")[2] or b"").decode().partition(":")
        form = dict(pair.split("=", 1) for pair in request.body.decode().split("&") if "=" in pair)
        if user != "client-1" or password != SECRET or form.get("grant_type") != "client_credentials":
            return json_response({"error": "invalid_client"}, 401)
        with self._lock:
            token = f"tok-{next(self._serial)}"
            self.tokens.add(token)
        return json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime}
        )

    def expire_tokens(self) -> None:
        with self._lock:
            self.tokens.clear()

    def authenticate(self, request: Request) -> Response | None:
        if request.route == "token":
            return None
        self.seen_auth.append((request.header("Authorization"), dict(request.query)))
        header = request.header("Authorization") or ""
        if header.startswith("Bearer tok-"):
            ok = header.removeprefix("Bearer ") in self.tokens
        else:
            basic = "Basic " + base64.b64encode(f"user-1:{SECRET}".encode()).decode()
            ok = (
                header in (basic, SECRET, f"Bearer {SECRET}")
                or request.query.get("api_key") == SECRET
                or (request.header("X-User") == "user-1" and request.header("X-Pass") == SECRET)
            )
        if not ok:
            return json_response({"error": {"code": "AUTH", "detail": "credentials refused"}}, 401)
        return None

    # -- collections -----------------------------------------------------------------------------
    def _offset(self, request: Request) -> Response:
        limit, offset = int(request.query["limit"]), int(request.query["offset"])
        return json_response({"items": ITEMS[offset : offset + limit], "total": len(ITEMS)})

    def _skip(self, request: Request) -> Response:
        select, skip = int(request.query["select"]), int(request.query["skip"])
        return json_response(ITEMS[skip : skip + select])

    def _cursor(self, request: Request) -> Response:
        start = int(request.query.get("after") or 0)
        page = ITEMS[start : start + 10]
        following = str(start + 10) if start + 10 < len(ITEMS) else ""
        return json_response({"data": page, "meta": {"next": following}})

    def _link(self, request: Request) -> Response:
        page_no = int(request.query.get("page") or 0)
        page = ITEMS[page_no * 10 : page_no * 10 + 10]
        headers = {}
        if (page_no + 1) * 10 < len(ITEMS):
            headers["Link"] = (
                f'<{self.base_url}/v1/link?page={page_no + 1}>; rel="next", <{self.base_url}>; rel="first"'
            )
        return json_response({"data": page}, headers=headers)

    def _next_in_body(self, request: Request) -> Response:
        page_no = int(request.query.get("page") or 0)
        following = f"/v1/next-in-body?page={page_no + 1}" if (page_no + 1) * 10 < len(ITEMS) else None
        return json_response(
            {"results": ITEMS[page_no * 10 : page_no * 10 + 10], "links": {"next": following}}
        )

    def _stuck(self, request: Request) -> Response:
        return json_response({"data": [ITEMS[0]], "meta": {"next": "same"}})

    def _bad(self, request: Request) -> Response:
        return json_response({"error": {"code": "LIST_UNKNOWN", "detail": "no list 42"}}, 404)

    def _enveloped(self, request: Request) -> Response:
        if self.enveloped_failures:
            self.enveloped_failures -= 1
            return json_response({"ok": False, "error": {"code": 503, "detail": "busy"}})
        return json_response({"ok": True, "value": 7})

    def _me(self, request: Request) -> Response:
        return json_response({"user": "user-1"})


def partner_error(response: requests.Response) -> str:
    """The partner's error envelope: ``{"error": {"code", "detail"}}``."""
    body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return f"{error.get('code')}: {error.get('detail')}"
    return str(error or body)


def partner_ok_envelope(body: Any) -> tuple[int, str] | None:
    if isinstance(body, dict) and body.get("ok") is False:
        return int(body["error"]["code"]), str(body["error"]["detail"])
    return None


class PartnerHook(RestHook):
    conn_name_attr = "partner_conn_id"
    default_conn_name = "partner_default"
    conn_type = "http"
    hook_name = "Partner"
    auth = HttpBasic()
    credentials_hint = "needs the partner login in Login and the password in Password."
    paging = OffsetPaging(page_size=10, items_key="items")
    error_text = staticmethod(partner_error)
    ok_envelope = staticmethod(partner_ok_envelope)
    check_path = "/v1/me"

    def __init__(self, partner_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        kwargs.setdefault("retry_policy", RetryPolicy(sleep=lambda s: None, base_delay=0.0))
        super().__init__(partner_conn_id, **kwargs)


def hook_of(auth: Any, **attrs: Any) -> type[PartnerHook]:
    return type("ConfiguredHook", (PartnerHook,), {"auth": auth, **attrs})


@pytest.fixture
def server() -> Iterator[PartnerServer]:
    with PartnerServer() as srv:
        yield srv


def connect(monkeypatch, server: PartnerServer, login: str = "user-1", password: str = SECRET, **extra: Any):
    conn = {
        "conn_type": "http",
        "host": server.base_url,
        "login": login,
        "password": password,
        "extra": extra,
    }
    monkeypatch.setenv("AIRFLOW_CONN_PARTNER_DEFAULT", json.dumps(conn))


# -- auth kinds -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("auth", "sent"),
    [
        (HttpBasic(), "Basic " + base64.b64encode(f"user-1:{SECRET}".encode()).decode()),
        (HeaderToken("Authorization"), SECRET),
        (Bearer(), f"Bearer {SECRET}"),
    ],
    ids=["basic", "raw-token", "bearer"],
)
def test_header_auth_kinds_send_the_connection_secret(monkeypatch, server, auth, sent) -> None:
    connect(monkeypatch, server)
    assert list(hook_of(auth)().paginate("/v1/offset")) == ITEMS
    assert {header for header, _ in server.seen_auth} == {sent}


def test_login_and_password_headers(monkeypatch, server) -> None:
    connect(monkeypatch, server)
    hook = hook_of(HeaderCredentials("X-User", "X-Pass"))()
    assert hook.call("GET", "/v1/me") == {"user": "user-1"}


def test_api_key_in_query_is_sent_but_never_shown(monkeypatch, server) -> None:
    connect(monkeypatch, server)
    hook = hook_of(QueryApiKey("api_key"))()
    assert hook.call("GET", "/v1/me") == {"user": "user-1"}
    assert server.seen_auth[-1][1]["api_key"] == SECRET
    with pytest.raises(PermanentTaskError) as failed:
        hook.call("GET", "/v1/bad", params={"list": "42"})
    assert SECRET not in str(failed.value)
    assert "LIST_UNKNOWN: no list 42" in str(failed.value)


def test_missing_secret_names_the_field(monkeypatch, server) -> None:
    connect(monkeypatch, server, password="")
    with pytest.raises(
        ValueError, match="'partner_default' needs the partner login in Login and the password"
    ):
        PartnerHook().get_conn()


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_oauth2_token_is_cached_and_refreshed_once_when_the_server_expires_it(
    monkeypatch, server, caplog
) -> None:
    connect(monkeypatch, server, login="client-1", token_url=f"{server.base_url}/oauth/token")
    hook = hook_of(OAuth2ClientCredentials())()
    caplog.set_level(logging.DEBUG)
    assert list(hook.paginate("/v1/offset")) == ITEMS
    assert server.calls_to("token") == 1  # three pages, one token
    server.expire_tokens()
    assert hook.call("GET", "/v1/me") == {"user": "user-1"}
    assert server.calls_to("token") == 2  # the 401 renewed the token once
    assert [header for header, _ in server.seen_auth[-2:]] == ["Bearer tok-1", "Bearer tok-2"]
    assert "tok-" not in caplog.text and SECRET not in caplog.text
    assert "tok-" not in repr(hook.get_conn().session.auth)


def test_oauth2_token_is_fetched_again_before_it_expires(monkeypatch, server) -> None:
    from lytics_provider.hooks.rest_auth import OAuth2Token

    server.token_lifetime = 60
    token = OAuth2Token(
        f"{server.base_url}/oauth/token", "client-1", SECRET, clock=(fake := FakeTime()).clock
    )
    first = token.token()
    assert token.token() == first
    fake.now += 31  # within the 30 s margin of the 60 s lifetime
    assert token.token() != first
    assert token.fetches == 2


def test_oauth2_refused_client_fails_at_once_without_the_secret(monkeypatch, server) -> None:
    connect(
        monkeypatch,
        server,
        login="client-1",
        password="wrong-" + SECRET,
        token_url=f"{server.base_url}/oauth/token",
    )
    hook = hook_of(OAuth2ClientCredentials())()
    with pytest.raises(AuthTaskError) as failed:
        hook.call("GET", "/v1/me")
    assert "refused client id 'client-1'" in str(failed.value)
    assert SECRET not in str(failed.value)
    assert server.calls_to("me") == 0


def test_a_token_that_stays_refused_after_renewal_fails(monkeypatch, server) -> None:
    connect(monkeypatch, server, login="client-1", token_url=f"{server.base_url}/oauth/token")
    hook = hook_of(OAuth2ClientCredentials())()
    hook.call("GET", "/v1/me")
    server.add_route("GET", r"/v1/refused", lambda r: json_response({"error": "no"}, 401), "refused")
    server.routes.insert(0, server.routes.pop())
    with pytest.raises(AuthTaskError):
        hook.call("GET", "/v1/refused")
    assert server.calls_to("refused") == 2  # once, then once more with a renewed token


# -- paging -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "paging", "calls"),
    [
        ("/v1/offset", OffsetPaging(page_size=10, items_key="items"), 3),
        ("/v1/skip", skip_select(10), 3),
        ("/v1/cursor", CursorPaging(cursor_param="after", next_key="meta.next", items_key="data"), 3),
        ("/v1/link", LinkPaging(items_key="data"), 3),
        ("/v1/next-in-body", LinkPaging(items_key="results", next_url_key="links.next"), 3),
    ],
    ids=["offset-limit", "skip-select", "cursor", "link-header", "next-url-in-body"],
)
def test_each_paging_style_reads_every_item_once(monkeypatch, server, path, paging, calls) -> None:
    connect(monkeypatch, server)
    hook = PartnerHook()
    assert list(hook.paginate(path, paging=paging)) == ITEMS
    assert hook.calls == calls


def test_skip_select_stops_at_a_short_page_and_offset_at_total(monkeypatch, server) -> None:
    connect(monkeypatch, server)
    hook = PartnerHook()
    assert len(list(hook.paginate("/v1/skip", paging=skip_select(23)))) == 23
    assert hook.calls == 2  # a full page of 23 asks once more and gets an empty page
    assert len(list(hook.paginate("/v1/offset", page_size=23))) == 23
    assert hook.calls == 3  # offset reached total: no extra call


def test_a_cursor_that_does_not_advance_fails(monkeypatch, server) -> None:
    connect(monkeypatch, server)
    with pytest.raises(PagingError, match="repeats"):
        list(PartnerHook().paginate("/v1/stuck", paging=CursorPaging(next_key="meta.next")))


# -- error envelope -----------------------------------------------------------------------------------
def test_the_vendor_error_envelope_is_the_message(monkeypatch, server) -> None:
    connect(monkeypatch, server)
    with pytest.raises(
        PermanentTaskError, match=r"404 LIST_UNKNOWN: no list 42 \(connection 'partner_default'\)"
    ):
        PartnerHook().call("GET", "/v1/bad")


def test_a_2xx_error_envelope_is_retried(monkeypatch, server) -> None:
    connect(monkeypatch, server)
    server.enveloped_failures = 2
    hook = PartnerHook()
    assert hook.call("GET", "/v1/enveloped") == {"ok": True, "value": 7}
    assert server.calls_to("enveloped") == 3
    server.enveloped_failures = 10
    with pytest.raises(ServiceError, match="error envelope: status 503, message 'busy'"):
        hook.call("GET", "/v1/enveloped")


# -- call budget --------------------------------------------------------------------------------------
def test_retry_after_pauses_the_shared_budget_for_every_hook(monkeypatch, server, tmp_path) -> None:
    connect(monkeypatch, server, calls_per_hour=5)
    fake = FakeTime()
    policy = RetryPolicy(sleep=fake.sleep)
    path = tmp_path / "budget.db"
    first = PartnerHook(
        retry_policy=policy, ledger=CallLedger(path, 5, clock=fake.clock, sleep=fake.sleep), clock=fake.clock
    )
    other = CallLedger(path, 5, clock=fake.clock, sleep=fake.sleep)
    server.faults.add(FaultRule("429", path_regex="/v1/me", retry_after=7))
    assert first.call("GET", "/v1/me") == {"user": "user-1"}
    assert fake.slept == [7.0]  # the client waited what the server asked
    assert other.usage().paused_until == pytest.approx(1_800_000_007.0)  # and so does every other user
    assert other.usage().used == 2
    for _ in range(3):
        first.call("GET", "/v1/me")
    assert other.usage().used == 5
    assert not other.try_acquire()  # five calls per hour: the budget is spent for everyone


def test_the_budget_comes_from_the_connection_extra(monkeypatch, server, tmp_path) -> None:
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path))
    connect(monkeypatch, server, calls_per_hour=2)
    fake = FakeTime()
    hook = PartnerHook(clock=fake.clock, sleep=fake.sleep)
    hook.max_budget_wait = 0.0
    hook.call("GET", "/v1/me")
    hook.call("GET", "/v1/me")
    with pytest.raises(ServiceError, match="call budget of connection 'partner_default' is spent"):
        hook.call("GET", "/v1/me")
    assert server.calls_to("me") == 2
    assert str(hook.ledger.path).startswith(str(tmp_path))
    assert SECRET not in str(hook.ledger.path) and "user-1" not in str(hook.ledger.path)


# -- test_connection -------------------------------------------------------------------------------------
def test_connection_says_what_is_wrong(monkeypatch, server) -> None:
    connect(monkeypatch, server)
    ok, message = PartnerHook().test_connection()
    assert ok and "Connected to Partner" in message

    connect(monkeypatch, server, password="wrong-" + SECRET)
    ok, message = PartnerHook().test_connection()
    assert not ok and "refused the credentials" in message and "(401)" in message
    assert SECRET not in message

    connect(monkeypatch, server, password="")
    ok, message = PartnerHook().test_connection()
    assert not ok and "Password" in message

    with socket_closed() as port:
        conn = {
            "conn_type": "http",
            "host": f"127.0.0.1:{port}",
            "schema": "http",
            "login": "user-1",
            "password": SECRET,
        }
        monkeypatch.setenv("AIRFLOW_CONN_PARTNER_DEFAULT", json.dumps(conn))
        ok, message = PartnerHook().test_connection()
    assert not ok and message.startswith(f"Cannot reach http://127.0.0.1:{port}")
    assert SECRET not in message


def socket_closed():
    """A port on loopback that nothing listens on."""
    import contextlib
    import socket

    @contextlib.contextmanager
    def closed() -> Iterator[int]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        yield port

    return closed()
