"""Small threaded HTTP/1.1 server shared by the sandbox emulators (standard library only).

Subclasses (or callers) register routes by method and path regex; each handler takes a
:class:`Request` and returns a :class:`Response`. Per request the server

1. matches the route (first registered match wins) and counts the call,
2. consults :attr:`SandboxHTTPServer.faults` (see :mod:`lytics_sandbox.faults`),
3. calls :meth:`SandboxHTTPServer.authenticate` (a hook; the base accepts everything),
4. runs the handler and writes the whole response in one ``send`` with a correct Content-Length,
   keeping the connection alive unless the client asked to close it.

Query values named like credentials (``access_token``, ``key``, ...) are masked in the request log.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import ssl
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, unquote

from lytics_sandbox.faults import ALTERED_KINDS, FaultPlan, FaultRule

log = logging.getLogger(__name__)

UNMATCHED = "<unmatched>"
_REASONS = {s.value: s.phrase for s in HTTPStatus}


def json_bytes(payload: Any) -> bytes:
    """Compact JSON encoding used for every sandbox response."""
    return json.dumps(payload, separators=(",", ":")).encode()


class Headers(dict[str, str]):
    """Case-insensitive request headers (repeated headers are joined with ``, ``)."""

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())


@dataclass
class Request:
    """A parsed request as seen by a route handler (``query`` keeps the last value of each name)."""

    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)
    route: str = UNMATCHED

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def flag(self, name: str, default: bool = False) -> bool:
        """Boolean query parameter (``true``/``1``/``yes``/``t`` or a bare ``?name``)."""
        if name not in self.query:
            return default
        return self.query[name].strip().lower() in {"", "1", "true", "t", "yes", "y"}

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    """What a handler returns; ``body`` is sent as is."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def most_in_window(times: Iterable[float], span: float) -> int:
    """The most of ``times`` (call times, seconds) that fall within any ``span`` seconds."""
    ordered, best, start = sorted(times), 0, 0
    for end, moment in enumerate(ordered):
        while ordered[start] <= moment - span:
            start += 1
        best = max(best, end - start + 1)
    return best


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON :class:`Response`."""
    return Response(status=status, body=json_bytes(payload), headers=dict(headers or {}))


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    name: str


class _TCPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True
    app: SandboxHTTPServer

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept a connection; wrap it in TLS when the app serves https (handshake in the handler thread)."""
        conn, address = self.socket.accept()
        context = self.app.ssl_context
        if context is not None:
            conn = context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-response are routine here; log anything else quietly."""
        log.debug("sandbox connection error from %s", client_address, exc_info=True)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LyticsProviderSandbox/1.0"
    timeout = 120
    server: _TCPServer

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.app._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.app._track(self.connection, add=False)

    def parse_request(self) -> bool:
        """Lean HTTP/1.x request-line and header parser (the stdlib one goes through ``email``)."""
        self.command = None  # type: ignore[assignment]
        self.request_version = self.default_request_version
        self.close_connection = True
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = self.requestline.split()
        if len(words) != 3 or not words[2].startswith("HTTP/1."):
            self.send_error(HTTPStatus.BAD_REQUEST, "Bad request line")
            return False
        self.command, self.path, self.request_version = words
        headers = Headers()
        while True:
            line = self.rfile.readline(65537)
            if len(line) > 65536 or len(headers) > 100:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("iso-8859-1").partition(":")
            key, value = name.strip().lower(), value.strip()
            headers[key] = f"{dict.get(headers, key)}, {value}" if key in headers else value
        self.headers = headers  # type: ignore[assignment]
        conn = (headers.get("Connection") or "").lower()
        http10 = self.request_version == "HTTP/1.0"
        self.close_connection = conn == "close" or (http10 and conn != "keep-alive")
        if (headers.get("Expect") or "").lower() == "100-continue" and not http10:
            return self.handle_expect_100()
        return True

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log (it would print query strings with tokens)."""

    def _serve(self) -> None:
        self.server.app._handle(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self.rfile.readline(65537).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline(65537)

    def write_response(self, resp: Response, head_only: bool = False) -> None:
        body = resp.body
        lines = [
            f"HTTP/1.1 {resp.status} {_REASONS.get(resp.status, 'Status')}",
            f"Server: {self.server_version}",
            f"Date: {self.date_time_string()}",
            f"Content-Type: {resp.content_type}",
            f"Content-Length: {len(body)}",
        ]
        lines.extend(f"{k}: {v}" for k, v in resp.headers.items())
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head if head_only else head + body)

    def write_dropped(self) -> None:
        """Start a 200 response, send part of the body, then cut the connection."""
        partial = b'{"status":200,"message":"success","data":[{"_uid":"'
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(partial) + 4096}\r\n\r\n"
        ).encode("latin-1")
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.write(head + partial)
            self.connection.shutdown(socket.SHUT_RDWR)


class SandboxHTTPServer:
    """Threaded loopback HTTP server with routing, call counters, a request log and fault hooks."""

    sensitive_params: frozenset[str] = frozenset(
        {"access_token", "key", "token", "api_key", "apikey", "password", "secret"}
    )

    def __init__(self, host: str = "127.0.0.1", port: int = 0, log_size: int = 2000) -> None:
        self.host = host
        self.port = port
        self.routes: list[Route] = []
        self.faults = FaultPlan()
        self.calls: Counter[str] = Counter()
        self.total_calls = 0
        self.request_log: deque[dict[str, Any]] = deque(maxlen=log_size)
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._httpd: _TCPServer | None = None
        self._thread: threading.Thread | None = None
        self.ssl_context: ssl.SSLContext | None = None
        """Set before :meth:`start` to serve HTTPS (``lytics_sandbox.tls`` makes one with ``trustme``)."""

    # -- routing -------------------------------------------------------------------------------
    def add_route(self, method: str, pattern: str, handler: Handler, name: str | None = None) -> Route:
        """Register ``handler`` for ``method`` and a path regex matched in full (named groups → params)."""
        route = Route(method.upper(), re.compile(pattern), handler, name or f"{method.upper()} {pattern}")
        self.routes.append(route)
        return route

    def route(self, method: str, pattern: str, name: str | None = None) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add_route`."""

        def register(handler: Handler) -> Handler:
            self.add_route(method, pattern, handler, name)
            return handler

        return register

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """Return (route, decoded params, path_known) for a request line."""
        path_known = False
        for route in self.routes:
            m = route.pattern.fullmatch(path)
            if m is None:
                continue
            path_known = True
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route, {k: unquote(v) for k, v in m.groupdict().items() if v is not None}, True
        return None, {}, path_known

    # -- hooks for subclasses ----------------------------------------------------------------
    def authenticate(self, request: Request) -> Response | None:
        """Return an error response to reject the request; None lets it through."""
        return None

    def error_response(self, status: int, message: str, request: Request) -> Response:
        """Body used for errors the server itself produces (404, 405, faults, crashes)."""
        return json_response({"status": status, "message": message}, status)

    def fault_response(self, rule: FaultRule, request: Request) -> Response:
        """Response for an injected 429 / 5xx / expired-cursor / error-envelope fault."""
        if rule.kind == "error_envelope":
            body = json.loads(self.error_response(rule.status or 500, "sandbox injected error", request).body)
            return json_response({**body, "data": None}, 200)
        status = rule.response_status
        if rule.kind == "expired_cursor":
            message = "cursor expired: start a new scan"
        elif rule.kind == "429":
            message = "rate limit exceeded"
        else:
            message = "sandbox injected server error"
        resp = self.error_response(status, message, request)
        if rule.kind == "429" and rule.retry_after is not None:
            ra = rule.retry_after
            resp.headers["Retry-After"] = str(int(ra)) if isinstance(ra, int | float) else str(ra)
        return resp

    def altered_response(self, rule: FaultRule, request: Request, resp: Response) -> Response:
        """A served 2xx response changed by an ``early_end`` or ``truncated`` fault (others pass)."""
        if not 200 <= resp.status < 300:
            return resp
        if rule.kind == "truncated":
            half = resp.body[: len(resp.body) // 2]
            return Response(resp.status, half, resp.content_type, dict(resp.headers))
        doc = json.loads(resp.body)
        if isinstance(doc, dict) and isinstance(doc.get("data"), list):
            return json_response({**doc, "data": [], "_next": ""}, resp.status, resp.headers)
        return resp

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self) -> str:
        """Bind (port 0 = any free port), serve from a daemon thread and return the base URL."""
        if self._httpd is not None:
            return self.base_url
        httpd = _TCPServer((self.host, self.port), _RequestHandler)
        httpd.app = self
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        """Stop serving and close open keep-alive connections."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset_counters(self) -> None:
        """Zero the call counters and empty the request log."""
        with self._lock:
            self.calls.clear()
            self.total_calls = 0
            self.request_log.clear()

    def calls_to(self, route_name: str) -> int:
        return self.calls.get(route_name, 0)

    def logged(self, method: str | None = None, path_regex: str | None = None) -> Iterator[dict[str, Any]]:
        """Iterate logged requests, optionally filtered by method and path regex."""
        pattern = re.compile(path_regex) if path_regex else None
        for entry in list(self.request_log):
            if method and entry["method"] != method.upper():
                continue
            if pattern and not pattern.search(entry["path"]):
                continue
            yield entry

    # -- request handling ---------------------------------------------------------------------
    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _handle(self, h: _RequestHandler) -> None:
        method = h.command
        target = h.path
        if target.startswith(("http://", "https://")):
            target = "/" + target.split("/", 3)[-1] if target.count("/") >= 3 else "/"
        path, _, raw_query = target.partition("?")
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        body = h.read_body()
        route, params, path_known = self.match(method, path)
        name = route.name if route else UNMATCHED
        req = Request(method, path, query, h.headers, body, params, name)
        with self._lock:
            self.calls[name] += 1
            self.total_calls += 1

        resp: Response | None = None
        rule = self.faults.decide(method, path, query)
        if rule is not None:
            if rule.sleep_seconds > 0:
                time.sleep(rule.sleep_seconds)
            if rule.kind == "drop":
                h.write_dropped()
                self._log(req, 0)
                return
            if rule.kind in ALTERED_KINDS:
                resp = self.altered_response(rule, req, self._dispatch(route, req, path_known))
            elif rule.kind != "slow":
                resp = self.fault_response(rule, req)
        if resp is None:
            resp = self._dispatch(route, req, path_known)
        # Logged before the answer is written, so a client that has read it finds it in the log.
        self._log(req, resp.status)
        h.write_response(resp, head_only=method == "HEAD")

    def _dispatch(self, route: Route | None, req: Request, path_known: bool) -> Response:
        if route is None:
            if path_known:
                return self.error_response(405, f"method {req.method} not allowed", req)
            return self.error_response(404, f"no such endpoint: {req.path}", req)
        denied = self.authenticate(req)
        if denied is not None:
            return denied
        try:
            return route.handler(req)
        except Exception:
            log.exception("sandbox handler %s failed", route.name)
            return self.error_response(500, "sandbox handler error", req)

    def _log(self, req: Request, status: int) -> None:
        query = {k: ("***" if k.lower() in self.sensitive_params else v) for k, v in req.query.items()}
        entry = {"method": req.method, "path": req.path, "query": query, "status": status, "route": req.route}
        with self._lock:
            self.request_log.append(entry)
