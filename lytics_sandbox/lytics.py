"""Loopback emulator of the public Lytics API (segments, scan, schema, entity, collect).

Choices where the public contract is silent (documented, not claims about the real service):

* Auth: ``Authorization: <token>`` (raw; a ``Bearer`` prefix is rejected), or query
  ``access_token`` / legacy ``key``. Anything else is 401.
* Scan ``limit``: default 10; values above 100 are clamped to 100; non-integers or values < 1 are 400.
* Scan cursor: URL-safe base64 of ``{"a": audience id, "v": version, "o": offset}``. A cursor for
  another audience or one that does not decode is 400; a cursor issued before the audience changed
  version is 400 "cursor expired" (restart the scan). The last page has ``_next: ""``.
* ``/collect/json``: body is one JSON object or a JSON array of objects (NDJSON is 400); bodies
  over 10 MB are 413.
* ``/collect/bulk``: ``Content-Type`` containing ``csv`` → CSV (header row, or the ``headers``
  query), containing ``json`` → JSON array or NDJSON; anything else is 415. Bodies may be gzip
  (magic bytes or ``Content-Encoding: gzip``). A malformed row stops processing with 400 (rows
  before it are kept) unless ``droperrors=true``, which counts it in ``rejected_count`` instead.
  JSON records with objects nested in arrays are malformed rows.
* Any record whose compact JSON is over 16 KB is rejected and counted in ``rejected_count``.
* ``dryrun=true`` counts records but stores nothing.
"""

from __future__ import annotations

import base64
import binascii
import csv
import gzip
import hmac
import io
import itertools
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer, json_response
from lytics_sandbox.synth import Audience, SyntheticAccount, select_fields

MAX_SCAN_LIMIT = 100
DEFAULT_SCAN_LIMIT = 10
MAX_RECORD_BYTES = 16 * 1024
MAX_JSON_BODY_BYTES = 10 * 1024 * 1024

_V2_CODES = {
    400: "BADREQ-001",
    401: "UNAUTHORIZED-017",
    403: "FORBIDDEN-026",
    404: "NOTFOUND-003",
    500: "INTERNAL-019",
}


class CursorError(ValueError):
    """A scan cursor that cannot be used."""


def encode_cursor(audience_id: str, version: int, offset: int) -> str:
    """Opaque scan cursor (the sandbox's ``_next`` value)."""
    raw = json.dumps({"a": audience_id, "v": version, "o": offset}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, int, int]:
    """Inverse of :func:`encode_cursor`; raises :class:`CursorError`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        doc = json.loads(raw)
        aid, version, offset = str(doc["a"]), int(doc["v"]), int(doc["o"])
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise CursorError("invalid start cursor") from exc
    if offset < 0 or version < 0:
        raise CursorError("invalid start cursor")
    return aid, version, offset


class CollectError(ValueError):
    """A malformed row in an upload (stops processing unless ``droperrors``)."""


class LyticsSandbox(SandboxHTTPServer):
    """Lytics API emulator over a :class:`SyntheticAccount`; see the module docstring.

    ``token`` is the only credential accepted; ``page_delay`` seconds are slept before each scan
    page. ``profile_edit``, when set, is applied to every profile a scan returns (before the field
    selection), e.g. to serve profiles without ``_uid`` as CRM imports have them.
    Route names (keys of :attr:`calls`): ``v2_segment_list``, ``v2_segment_get``,
    ``segment_list``, ``segment_get``, ``segment_sizes``, ``segment_size``, ``segment_scan``,
    ``v2_schema_fields``, ``schema``, ``entity``, ``collect_json``, ``collect_bulk``.
    """

    def __init__(
        self,
        account: SyntheticAccount | None = None,
        token: str = "sandbox-token",
        page_delay: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.account = account or SyntheticAccount()
        self._token = token
        self.page_delay = self._page_delay = page_delay
        self.profile_edit: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self._ids = itertools.count(1)
        self._collect_lock = threading.Lock()
        self._collected: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.collect_requests: list[dict[str, Any]] = []
        seg = r"(?P<key>[^/]+)"
        entity = r"/api/entity/(?P<table>[^/]+)/(?P<field>[^/]+)/(?P<value>[^/]+)"
        for method, pattern, handler, name in (
            ("GET", r"/v2/segment", self._v2_segments, "v2_segment_list"),
            ("GET", rf"/v2/segment/{seg}", self._v2_segment, "v2_segment_get"),
            ("GET", r"/api/segment", self._segments, "segment_list"),
            ("GET", r"/api/segment/sizes", self._sizes, "segment_sizes"),
            ("GET", rf"/api/segment/{seg}/scan", self._scan, "segment_scan"),
            ("GET", rf"/api/segment/{seg}/sizes?", self._size, "segment_size"),
            ("GET", rf"/api/segment/{seg}", self._segment, "segment_get"),
            ("GET", r"/v2/schema/(?P<table>[^/]+)/field", self._v2_fields, "v2_schema_fields"),
            ("GET", r"/api/schema/(?P<table>[^/]+)", self._v1_schema, "schema"),
            ("GET", entity, self._entity, "entity"),
            ("POST", r"/collect/json/(?P<stream>[^/]+)", self._collect_json, "collect_json"),
            ("POST", r"/collect/bulk/(?P<stream>[^/]+)", self._collect_bulk, "collect_bulk"),
            ("GET", r"/v2/stream/(?P<stream>[^/]+)/events", self._stream_events, "stream_events"),
        ):
            self.add_route(method, pattern, handler, name)

    # -- helpers for tests -------------------------------------------------------------------
    def audience(self, slug: str) -> Audience:
        return self.account.audience(slug)

    def expected_members(self, slug: str, fields: list[str] | str | None = None) -> Iterator[dict[str, Any]]:
        """Exactly what a full scan of ``slug`` returns now, row by row."""
        if self.profile_edit is None:
            return self.account.iter_members(slug, fields=select_fields(fields))
        keep, edit = select_fields(fields), self.profile_edit
        rows = (edit(p) for p in self.account.iter_members(slug))
        return (p if keep is None else {k: p[k] for k in keep if k in p} for p in rows)

    def set_version(self, slug: str, version: int) -> Audience:
        return self.account.set_version(slug, version)

    def set_churn(self, slug: str, exits: int, enters: int, changes: int) -> Audience:
        return self.account.set_churn(slug, exits, enters, changes)

    def collected(self, stream: str) -> list[dict[str, Any]]:
        """Records stored for ``stream`` (a copy)."""
        with self._collect_lock:
            return list(self._collected.get(stream, ()))

    def streams(self) -> list[str]:
        with self._collect_lock:
            return sorted(self._collected)

    def add_stream_events(self, stream: str, events: list[dict[str, Any]]) -> None:
        """Append ``events`` (oldest first) to a stream, as if they had been collected."""
        with self._collect_lock:
            self._collected[stream].extend(events)

    def clear_collected(self) -> None:
        with self._collect_lock:
            self._collected.clear()
            self.collect_requests.clear()

    def reset(self, account: SyntheticAccount | None = None) -> None:
        """Serve ``account`` (default: a new default account) with nothing collected, no faults,
        no profile edit, the page delay it started with and zeroed counters, so that one server
        started per test session serves each test as a new one."""
        self.account = account or SyntheticAccount()
        self.page_delay = self._page_delay
        self.profile_edit = None
        self.faults.clear()
        self.clear_collected()
        self.reset_counters()

    # -- envelope & auth ---------------------------------------------------------------------
    def _request_id(self) -> str:
        return f"sbx-{next(self._ids):010d}"

    def ok(self, data: Any, **extra: Any) -> Response:
        return json_response(
            {"status": 200, "message": "success", "data": data, **extra, "request_id": self._request_id()}
        )

    def error_response(self, status: int, message: str, request: Request) -> Response:
        body: dict[str, Any] = {"status": status, "message": message, "request_id": self._request_id()}
        if request.path.startswith("/v2/"):
            body["errors"] = [
                {
                    "code": _V2_CODES.get(status, "UNKNOWN-000"),
                    "level": "error",
                    "message": message,
                    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
            ]
        return json_response(body, status)

    def authenticate(self, request: Request) -> Response | None:
        q = request.query
        given = request.header("Authorization") or q.get("access_token") or q.get("key")
        if given and hmac.compare_digest(given.encode(), self._token.encode()):
            return None
        return self.error_response(401, "Unauthorized: missing or invalid API token", request)

    def _audience_or_404(self, request: Request) -> Audience | Response:
        try:
            return self.account.audience(request.params["key"])
        except KeyError:
            return self.error_response(404, f"segment not found: {request.params['key']}", request)

    # -- segments ----------------------------------------------------------------------------
    def _list(self, request: Request, sizes: bool) -> list[dict[str, Any]]:
        table = request.query.get("table") or "user"
        kind = request.query.get("kind") or "segment"
        if table != "user" or kind not in {"segment", "all"}:
            return []
        return [a.describe(sizes=sizes) for a in self.account.audiences.values()]

    def _v2_segments(self, request: Request) -> Response:
        return self.ok(self._list(request, sizes=request.flag("sizes")))

    def _segments(self, request: Request) -> Response:
        return self.ok(self._list(request, sizes=False))

    def _v2_segment(self, request: Request) -> Response:
        aud = self._audience_or_404(request)
        return aud if isinstance(aud, Response) else self.ok(aud.describe(sizes=request.flag("sizes")))

    def _segment(self, request: Request) -> Response:
        aud = self._audience_or_404(request)
        return aud if isinstance(aud, Response) else self.ok(aud.describe(sizes=False))

    @staticmethod
    def _size_doc(aud: Audience) -> dict[str, Any]:
        return {"id": aud.id, "name": aud.name, "slug_name": aud.slug, "size": aud.size}

    def _size(self, request: Request) -> Response:
        aud = self._audience_or_404(request)
        return aud if isinstance(aud, Response) else self.ok(self._size_doc(aud))

    def _sizes(self, request: Request) -> Response:
        docs = []
        for key in filter(None, (k.strip() for k in request.query.get("ids", "").split(","))):
            try:
                docs.append(self._size_doc(self.account.audience(key)))
            except KeyError:
                continue
        return self.ok(docs)

    # -- stream events -----------------------------------------------------------------------
    def _stream_events(self, request: Request) -> Response:
        """A stream's events, oldest first: ``limit`` (default 100, max 1000) and an opaque ``start``.

        Answers ``{"data": [...], "_next": cursor}`` with ``_next`` empty on the last page, the
        same paging the segment scan uses (the public docs name the endpoint, not its paging).
        """
        stream = request.params["stream"]
        with self._collect_lock:
            events = self._collected.get(stream)
            if events is None:
                return self.error_response(404, f"stream not found: {stream}", request)
            try:
                limit = min(max(1, int(request.query.get("limit") or 100)), 1000)
                offset = int(request.query.get("start") or 0)
            except ValueError:
                return self.error_response(400, "limit and start must be integers", request)
            page = events[offset : offset + limit]
            total = len(events)
        nxt = str(offset + limit) if offset + limit < total else ""
        return self.ok(page, _next=nxt, total=total)

    # -- scan --------------------------------------------------------------------------------
    def _scan(self, request: Request) -> Response:
        aud = self._audience_or_404(request)
        if isinstance(aud, Response):
            return aud
        raw_limit = request.query.get("limit") or str(DEFAULT_SCAN_LIMIT)
        try:
            limit = int(raw_limit)
        except ValueError:
            return self.error_response(400, f"invalid limit: {raw_limit!r}", request)
        if limit < 1:
            return self.error_response(400, "limit must be >= 1", request)
        limit = min(limit, MAX_SCAN_LIMIT)
        offset = 0
        start = request.query.get("start", "")
        if start:
            try:
                aid, version, offset = decode_cursor(start)
            except CursorError as exc:
                return self.error_response(400, str(exc), request)
            if aid != aud.id:
                return self.error_response(400, "start cursor belongs to another segment", request)
            if version != aud.version:
                return self.error_response(400, "cursor expired: segment changed, start a new scan", request)
        if self.page_delay > 0:
            time.sleep(self.page_delay)
        size = aud.size
        end = min(offset + limit, size)
        keep = select_fields(request.query.get("fields"))
        profile = self.account.profiler()
        rows = []
        edit = self.profile_edit
        for i in aud.window()[offset:end]:
            p = profile(i) if edit is None else edit(profile(i))
            rows.append(p if keep is None else {k: p[k] for k in keep if k in p})
        nxt = encode_cursor(aud.id, aud.version, end) if end < size else ""
        return self.ok(rows, total=size, _next=nxt)

    # -- schema & entity ---------------------------------------------------------------------
    def _v2_fields(self, request: Request) -> Response:
        if request.params["table"] != "user":
            return self.error_response(404, f"table not found: {request.params['table']}", request)
        fields = self.account.schema()
        flt = request.query.get("filter", "all")
        if flt in {"scalar", "nonscalar"}:
            nonscalar = flt == "nonscalar"
            fields = [f for f in fields if f["type"].startswith(("[]", "map[")) == nonscalar]
        return self.ok(fields)

    def _v1_schema(self, request: Request) -> Response:
        if request.params["table"] != "user":
            return self.error_response(404, f"table not found: {request.params['table']}", request)
        cols = [
            {
                "as": f["id"],
                "is_by": f["is_identifier"],
                "type": f["type"],
                "shortdesc": f["shortdesc"],
                "longdesc": "",
                "froms": ["sandbox"],
                "identities": [f["id"]] if f["is_identifier"] else [],
            }
            for f in self.account.schema()
        ]
        by = [c["as"] for c in cols if c["is_by"]]
        return self.ok({"name": "user", "by_fields": by, "fields": cols, "columns": cols})

    def _entity(self, request: Request) -> Response:
        p = request.params
        i = self.account.lookup(p["field"], p["value"]) if p["table"] == "user" else None
        if i is None:
            return self.error_response(404, "entity not found", request)
        profile = self.account.profile(i)
        keep = select_fields(request.query.get("fields"))
        data = profile if keep is None else {k: profile[k] for k in keep if k in profile}
        if not request.flag("segments", default=True):
            data.pop("segments", None)
        meta = {"by_fields": ["_uid", "email", "user_id"], "format": "json", "name": "user"}
        return self.ok(data, meta=meta)

    # -- collect -----------------------------------------------------------------------------
    def _collect_json(self, request: Request) -> Response:
        if len(request.body) > MAX_JSON_BODY_BYTES:
            return self.error_response(413, "request body over 10MB: use the bulk endpoint", request)
        try:
            doc = json.loads(gunzip_if_needed(request))
        except (ValueError, OSError):
            return self.error_response(400, "body must be a JSON object or a JSON array of objects", request)
        records = doc if isinstance(doc, list) else [doc]
        good = [r for r in records if isinstance(r, dict)]
        return self.ok(self._store(request, "json", good, len(records) - len(good)))

    def _collect_bulk(self, request: Request) -> Response:
        ctype = (request.header("Content-Type") or "").lower()
        try:
            text = gunzip_if_needed(request).decode("utf-8-sig")
        except (OSError, UnicodeDecodeError, EOFError):
            return self.error_response(400, "body is not valid UTF-8 (or gzip of it)", request)
        droperrors = request.flag("droperrors")
        if "csv" in ctype:
            rows = parse_csv(text, request.query.get("headers"), request.query.get("delimiter"))
        elif "json" in ctype:
            rows = parse_json_records(text)
        else:
            return self.error_response(415, f"unsupported Content-Type {ctype!r}: use csv or json", request)
        extra: dict[str, Any] = {}
        if request.query.get("append"):
            try:
                extra = dict(json.loads(request.query["append"]))
            except (ValueError, TypeError):
                return self.error_response(400, "append must be a JSON object", request)
        good: list[dict[str, Any]] = []
        rejected = 0
        for row in rows:
            if isinstance(row, CollectError):
                if droperrors:
                    rejected += 1
                    continue
                data = self._store(request, "bulk", good, rejected)
                err = json.loads(self.error_response(400, f"processing stopped: {row}", request).body)
                return json_response({**err, "data": data}, 400)
            good.append({**row, **extra} if extra else row)
        return self.ok(self._store(request, "bulk", good, rejected))

    def _store(
        self, request: Request, endpoint: str, records: list[dict[str, Any]], rejected: int
    ) -> dict[str, Any]:
        """Keep accepted records (unless dryrun), log the request, return the DataUpload body."""
        dryrun = request.flag("dryrun")
        accepted = []
        for rec in records:
            if len(json.dumps(rec, separators=(",", ":"))) > MAX_RECORD_BYTES:
                rejected += 1
            else:
                accepted.append(rec)
        stream = request.params["stream"]
        ctype = request.header("Content-Type") or ""
        masked = {k: ("***" if k.lower() in self.sensitive_params else v) for k, v in request.query.items()}
        with self._collect_lock:
            if not dryrun:
                self._collected[stream].extend(accepted)
            self.collect_requests.append(
                {
                    "endpoint": endpoint,
                    "stream": stream,
                    "query": masked,
                    "content_type": ctype,
                    "count": len(accepted),
                    "rejected": rejected,
                    "dryrun": dryrun,
                }
            )
        return {
            "message_count": len(accepted),
            "rejected_count": rejected,
            "content-type": ctype,
            "droperrors": request.flag("droperrors"),
            "dryrun": dryrun,
            "timestamp_field": request.query.get("timestamp_field", ""),
            "filename": request.query.get("filename", ""),
        }


def gunzip_if_needed(request: Request) -> bytes:
    """Request body, decompressed when gzip (magic bytes or ``Content-Encoding: gzip``)."""
    body = request.body
    if body[:2] == b"\x1f\x8b" or (request.header("Content-Encoding") or "").lower() == "gzip":
        return gzip.decompress(body)
    return body


def parse_csv(
    text: str, headers: str | None = None, delimiter: str | None = None
) -> Iterator[dict[str, str] | CollectError]:
    """Rows of a CSV upload as dicts; a row with the wrong column count yields a :class:`CollectError`."""
    delim = "\t" if delimiter in {"t", "\\t", "\t"} else (delimiter or ",")[:1]
    reader = csv.reader(io.StringIO(text), delimiter=delim)
    names = [h.strip() for h in headers.split(",")] if headers else None
    for row in reader:
        if not row or row == [""]:
            continue
        if names is None:
            names = [h.strip() for h in row]
            continue
        if len(row) != len(names):
            yield CollectError(f"line {reader.line_num}: expected {len(names)} columns, got {len(row)}")
            continue
        yield dict(zip(names, row, strict=True))


def parse_json_records(text: str) -> Iterator[dict[str, Any] | CollectError]:
    """Records of a JSON upload: one JSON array, or newline-delimited JSON objects."""
    if text.lstrip().startswith("["):
        try:
            items: list[Any] = json.loads(text)
        except ValueError as exc:
            yield CollectError(f"invalid JSON array: {exc}")
            return
        numbered: Iterator[tuple[int, Any]] = enumerate(items, 1)
    else:
        numbered = _ndjson(text)
    for n, item in numbered:
        if isinstance(item, CollectError):
            yield item
        elif not isinstance(item, dict):
            yield CollectError(f"record {n}: not a JSON object")
        elif any(isinstance(v, list) and any(isinstance(x, dict) for x in v) for v in item.values()):
            yield CollectError(f"record {n}: objects nested inside arrays are not supported")
        else:
            yield item


def _ndjson(text: str) -> Iterator[tuple[int, Any]]:
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except ValueError:
            yield n, CollectError(f"line {n}: invalid JSON")
