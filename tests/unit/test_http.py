"""HttpClient: retry, Retry-After, fail fast, unusable 200 bodies and redaction, against a tiny
loopback server."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.task_errors import TASK_ERRORS, AuthTaskError, PermanentTaskError
from lytics_provider.pipeline.http import (
    AuthError,
    HttpClient,
    PermanentServiceError,
    RetryPolicy,
    ServiceError,
    error_envelope,
    parse_retry_after,
)

SECRET = "s3cr3t-token-value"


class _Script:
    """Responses to hand out in order: (status, headers, body) or "drop"."""

    def __init__(self) -> None:
        self.responses: list[object] = []
        self.seen: list[dict[str, str]] = []


@pytest.fixture
def server() -> Iterator[tuple[str, _Script]]:
    script = _Script()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            return

        def do_GET(self) -> None:
            script.seen.append(dict(self.headers))
            item = script.responses.pop(0) if script.responses else (200, {}, {"ok": True})
            if item == "drop":
                self.wfile.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial')
                self.wfile.flush()
                self.close_connection = True
                return
            status, headers, body = item  # type: ignore[misc]
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    httpd.shutdown()
    httpd.server_close()


def _client(url: str, waits: list[float], **options: object) -> HttpClient:
    return HttpClient(
        base_url=url,
        headers={"Authorization": SECRET},
        secrets=(SECRET,),
        policy=RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=5, sleep=waits.append),
        **options,  # type: ignore[arg-type]
    )


def test_retries_429_honouring_retry_after_then_succeeds(server) -> None:
    url, script = server
    script.responses = [
        (429, {"Retry-After": "3"}, {"message": "slow down"}),
        (503, {}, {}),
        (200, {}, {"n": 1}),
    ]
    waits: list[float] = []
    client = _client(url, waits)
    assert client.json("GET", "/x") == {"n": 1}
    assert waits[0] == 3.0
    assert len(waits) == 2
    assert client.calls == 3
    assert all(seen["Authorization"] == SECRET for seen in script.seen)


def test_dropped_connection_is_retried(server) -> None:
    url, script = server
    script.responses = ["drop", (200, {}, {"n": 2})]
    waits: list[float] = []
    assert _client(url, waits).json("GET", "/x") == {"n": 2}
    assert len(waits) == 1


def test_auth_errors_fail_fast_without_the_token(server, caplog) -> None:
    url, script = server
    script.responses = [(401, {}, {"message": f"bad token {SECRET}"})]
    waits: list[float] = []
    with caplog.at_level(logging.DEBUG), pytest.raises(AuthError) as raised:
        _client(url, waits).json("GET", "/x")
    assert raised.value.status == 401
    assert waits == []
    assert SECRET not in str(raised.value)
    assert SECRET not in caplog.text


def test_gives_up_after_max_attempts(server) -> None:
    url, script = server
    script.responses = [(500, {}, {"message": "boom"})] * 4
    waits: list[float] = []
    with pytest.raises(ServiceError) as raised:
        _client(url, waits).json("GET", "/x")
    assert raised.value.status == 500
    assert len(waits) == 3


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("garbage") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0


@pytest.mark.parametrize("status", [400, 404, 422])
def test_permanent_statuses_fail_on_the_first_call(server, status: int) -> None:
    url, script = server
    script.responses = [(status, {}, {"message": "segment not found: newsletter"})]
    waits: list[float] = []
    client = _client(url, waits)
    with pytest.raises(PermanentServiceError) as raised:
        client.json("GET", "/x")
    assert raised.value.status == status
    assert not isinstance(raised.value, AirflowFailException)
    assert "segment not found: newsletter" in str(raised.value)
    assert waits == [] and client.calls == 1


def test_task_error_types_fail_the_task_and_name_the_connection(server) -> None:
    url, script = server
    script.responses = [(404, {}, {"message": "no such list"}), (403, {}, {"message": "forbidden"})]
    waits: list[float] = []
    client = _client(url, waits, errors=TASK_ERRORS, context="connection 'crm'", auth_fix="Fix the token.")
    with pytest.raises(PermanentTaskError) as missing:
        client.json("GET", "/x")
    assert isinstance(missing.value, AirflowFailException) and not isinstance(missing.value, AuthError)
    assert "connection 'crm'" in str(missing.value)
    with pytest.raises(AuthTaskError) as refused:
        client.json("GET", "/x")
    assert isinstance(refused.value, AirflowFailException) and isinstance(refused.value, AuthError)
    assert refused.value.status == 403
    assert "connection 'crm'" in str(refused.value) and str(refused.value).endswith("Fix the token.")
    assert waits == []


def test_a_200_body_cut_short_is_fetched_again(server) -> None:
    url, script = server
    script.responses = [(200, {}, b'{"data": [{"_uid": "a"}, {"_u'), (200, {}, {"data": []})]
    waits: list[float] = []
    client = _client(url, waits)
    assert client.json("GET", "/x") == {"data": []}
    assert len(waits) == 1 and client.calls == 2


def test_a_body_cut_short_every_time_names_its_size(server) -> None:
    url, script = server
    script.responses = [(200, {}, b'{"data": [1, 2')] * 4
    with pytest.raises(ServiceError, match=r"body cut short after 14 bytes") as raised:
        _client(url, []).json("GET", "/x")
    assert not isinstance(raised.value, PermanentServiceError)


def test_error_envelopes_are_retried_when_the_api_sends_them(server) -> None:
    url, script = server
    envelope = {"status": 500, "message": "backend unavailable", "data": None}
    script.responses = [(200, {}, envelope), (200, {}, {"status": 200, "data": {"id": "x"}})]
    waits: list[float] = []
    client = _client(url, waits, error_envelopes=True)
    assert client.json("GET", "/x") == {"status": 200, "data": {"id": "x"}}
    assert len(waits) == 1

    script.responses = [(200, {}, envelope)] * 4
    with pytest.raises(ServiceError) as raised:
        client.json("GET", "/x")
    assert raised.value.status == 500
    assert "status 500" in str(raised.value) and "backend unavailable" in str(raised.value)

    script.responses = [(200, {}, envelope)]
    assert _client(url, []).json("GET", "/x") == envelope  # clients of other APIs read it as is


def test_error_envelope_shapes() -> None:
    assert error_envelope({"status": 503, "message": "busy", "data": None}) == (503, "busy")
    assert error_envelope({"status": 404, "message": "gone"}) == (404, "gone")
    assert error_envelope({"status": 200, "message": "success", "data": None}) is None
    assert error_envelope({"status": 500, "message": "x", "data": []}) is None
    assert error_envelope({"status": True, "data": None}) is None
    assert error_envelope([1, 2]) is None
