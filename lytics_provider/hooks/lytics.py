"""Hook for the Lytics REST API (v1 ``/api`` and ``/collect``, v2 ``/v2``)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, TypedDict, Unpack

from requests.utils import get_environ_proxies

from lytics_provider.hooks.rest import RestHook
from lytics_provider.hooks.rest_auth import Credentials, HeaderToken
from lytics_provider.hooks.task_errors import PermanentTaskError
from lytics_provider.pipeline.http import HttpClient, PermanentServiceError, error_envelope
from lytics_provider.pipeline.lytics_scan import (
    MAX_SCAN_LIMIT,
    CursorExpiredError,
    RawScanPage,
    fetch_scan_page,
    page_members,
)
from lytics_provider.pipeline.scan_fetcher import ScanJob, SubprocessScan

DEFAULT_API_URL = "https://api.lytics.io"
DEFAULT_BULK_URL = "https://bulk.lytics.io"
MAX_RECORD_BYTES = 16 * 1024
MAX_BATCH_BYTES = 8 * 1024 * 1024

__all__ = [
    "MAX_SCAN_LIMIT",
    "CollectResult",
    "CursorExpiredError",
    "LyticsHook",
    "RawScanPage",
    "ScanPage",
    "UnknownAudienceError",
]


class UnknownAudienceError(PermanentTaskError):
    """The account has no audience with the id or slug a job names (fails the task without retries)."""


@dataclass(frozen=True)
class ScanPage:
    """One page of a segment scan: members, the cursor of the next page and the audience size."""

    members: list[dict[str, Any]]
    next_cursor: str
    total: int | None
    start: str


def _decoded(page: RawScanPage) -> ScanPage:
    members = page_members(page.body) if page.count else []
    return ScanPage(members=members, next_cursor=page.next_cursor, total=page.total, start=page.start)


class ScanWhere(TypedDict, total=False):
    """Where a scan starts and what its pages hold (see :meth:`LyticsHook.scan_segment_raw`).

    :param start: the cursor to start at (empty: the first page).
    :param limit: members per page, at most ``MAX_SCAN_LIMIT``.
    :param fields: the fields each member carries (None: all).
    """

    start: str
    limit: int
    fields: Iterable[str] | None


@dataclass
class CollectResult:
    """What a collect call reported: records accepted and rejected."""

    accepted: int = 0
    rejected: int = 0
    requests: int = 0

    def add(self, data: dict[str, Any]) -> None:
        """Add one ``DataUploadModel`` answer to the totals."""
        self.accepted += int(data.get("message_count") or 0)
        self.rejected += int(data.get("rejected_count") or 0)
        self.requests += 1


class LyticsHook(RestHook):
    """Talk to the Lytics API with the token stored in a ``lytics`` connection.

    The token is the connection password; it is sent as the raw ``Authorization`` header value
    (no ``Bearer`` prefix), as the Lytics API documents.

    :param lytics_conn_id: the ``lytics`` connection (default ``lytics_default``).
    :param kwargs: :class:`~lytics_provider.hooks.rest.RestHook`'s arguments.
    """

    conn_type = "lytics"
    hook_name = "Lytics"
    default_host = DEFAULT_API_URL
    auth = HeaderToken("Authorization")
    credentials_hint = "has no API token: put the Lytics token in its Password field."
    ok_envelope = staticmethod(error_envelope)
    check_path = "/v2/segment"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bulk_url = DEFAULT_BULK_URL
        self._params: dict[str, str] = {}
        self._subprocess_calls = 0

    def auth_fix(self) -> str:
        return (
            f"Put a valid Lytics API token in the Password field of connection "
            f"{self.lytics_conn_id!r}, with permission to read audiences (and to collect data "
            "for imports), and check its host is this account's API URL."
        )

    def configure_client(self, client: HttpClient, credentials: Credentials) -> None:
        """Read ``bulk_url`` and ``account_id`` from the extras; settle proxy settings once."""
        self._bulk_url = (self.extra.get("bulk_url") or DEFAULT_BULK_URL).rstrip("/")
        if self.extra.get("account_id"):
            self._params["account_id"] = str(self.extra["account_id"])
        client.settle_environment()

    def check_call(self) -> str:
        """List the account's audiences (names only): the token must be allowed to read them."""
        count = len(self._get("/v2/segment", table="user", kind="segment", sizes="false").get("data") or [])
        return f"the token reads {count} audiences"

    @property
    def account_id(self) -> str | None:
        """The ``account_id`` the connection's extra names (sent with every call), if any."""
        self.get_conn()
        return self._params.get("account_id")

    @property
    def calls(self) -> int:
        """HTTP calls made so far (by this process and by scan fetchers), retries included."""
        return super().calls + self._subprocess_calls

    def _get(self, path: str, **params: Any) -> Any:
        query = {**self._params, **{k: v for k, v in params.items() if v is not None}}
        return self.get_conn().json("GET", path, params=query)

    def list_segments(
        self, kind: str = "segment", table: str = "user", sizes: bool = True
    ) -> list[dict[str, Any]]:
        """All audiences of the account (``GET /v2/segment``)."""
        body = self._get("/v2/segment", table=table, kind=kind, sizes=str(sizes).lower())
        return list(body.get("data") or [])

    def get_segment(self, segment: str, sizes: bool = True) -> dict[str, Any]:
        """One audience by id or slug (``GET /v2/segment/{id}``).

        An audience the account does not have raises :class:`UnknownAudienceError` naming the
        closest slugs that exist.
        """
        try:
            return dict(self._get(f"/v2/segment/{segment}", sizes=str(sizes).lower())["data"])
        except PermanentServiceError as exc:
            if exc.status != 404:
                raise
            error = exc
        raise UnknownAudienceError(self._unknown_audience_message(segment, str(error)), 404) from None

    def _unknown_audience_message(self, segment: str, answer: str) -> str:
        try:
            known = self.list_segments(sizes=False)
        except PermanentServiceError:
            known = []
        slugs = sorted({str(name) for s in known if (name := s.get("slug_name") or s.get("id"))})
        close = difflib.get_close_matches(segment, slugs, n=3, cutoff=0.6)
        if close:
            hint = "Did you mean " + " or ".join(repr(slug) for slug in close) + "?"
        elif slugs:
            hint = f"Audiences of this account: {', '.join(map(repr, slugs[:20]))}" + (
                ", ..." if len(slugs) > 20 else ""
            )
        else:
            hint = "The account lists no audiences."
        return (
            f"Lytics has no audience {segment!r} (connection {self.lytics_conn_id!r}). {hint} "
            f"Set the job's audience to the slug or id of an existing audience. API answer: {answer}"
        )

    def get_schema_fields(self, table: str = "user", filter: str = "all") -> list[dict[str, Any]]:
        """Field definitions of a table (``GET /v2/schema/{table}/field``)."""
        return list(self._get(f"/v2/schema/{table}/field", filter=filter).get("data") or [])

    def scan_segment_page(self, segment_id: str, **where: Unpack[ScanWhere]) -> ScanPage:
        """Fetch one scan page starting at cursor ``start`` (empty for the first page)."""
        return _decoded(self.scan_segment_page_raw(segment_id, **where))

    def scan_segment_page_raw(self, segment_id: str, **where: Unpack[ScanWhere]) -> RawScanPage:
        """One scan page with its members left as the JSON the API sent."""
        start, limit = where.get("start", ""), where.get("limit", MAX_SCAN_LIMIT)
        return fetch_scan_page(self.get_conn(), segment_id, start, limit, where.get("fields"), self._params)

    def scan_segment(self, segment_id: str, **where: Unpack[ScanWhere]) -> Iterator[ScanPage]:
        """Stream every page of an audience as dicts, following ``_next`` until it is empty."""
        for page in self.scan_segment_raw(segment_id, **where):
            yield _decoded(page)

    def scan_segment_raw(
        self,
        segment_id: str,
        start: str = "",
        limit: int = MAX_SCAN_LIMIT,
        fields: Iterable[str] | None = None,
        in_subprocess: bool = False,
    ) -> Iterator[RawScanPage]:
        """Stream every page of an audience as raw JSON bodies, following ``_next`` until it is empty.

        With ``in_subprocess`` a child process follows the cursors and the pages arrive through a
        pipe while the caller stores the previous ones (see ``pipeline.scan_fetcher``); errors
        are raised here exactly as in-process (``CursorExpiredError``, the fail-fast
        ``AuthTaskError`` / ``PermanentTaskError``, ``ServiceError``) and the child's calls count
        in :attr:`calls`.
        """
        fields = list(fields) if fields else None
        if in_subprocess:
            yield from self._scan_in_subprocess(segment_id, start, limit, fields)
            return
        cursor = start
        while True:
            page = self.scan_segment_page_raw(segment_id, start=cursor, limit=limit, fields=fields)
            yield page
            if page.last:
                return
            cursor = page.next_cursor

    def _scan_in_subprocess(
        self, segment_id: str, start: str, limit: int, fields: list[str] | None
    ) -> Iterator[RawScanPage]:
        client = self.get_conn()
        policy = client.policy
        job = ScanJob(
            base_url=client.base_url,
            headers=dict(client.headers),
            segment_id=segment_id,
            start=start,
            limit=limit,
            fields=fields,
            params=dict(self._params),
            max_attempts=policy.max_attempts,
            base_delay=policy.base_delay,
            max_delay=policy.max_delay,
            timeout=client.timeout,
            secrets=tuple(client.secrets),
            context=client.context,
            auth_fix=client.auth_fix,
        )
        scan = SubprocessScan(job, self.log, client.errors)
        before = self._subprocess_calls
        try:
            for page in scan:
                self._subprocess_calls = before + scan.calls
                yield page
        finally:
            self._subprocess_calls = before + scan.calls

    def _collect_params(
        self, dryrun: bool, timestamp_field: str | None, filename: str | None, **extra: str
    ) -> dict[str, str]:
        """The query of a collect call: ``dryrun``, then ``extra``, then the optional names."""
        params = {**self._params, "dryrun": str(dryrun).lower(), **extra}
        if timestamp_field:
            params["timestamp_field"] = timestamp_field
        if filename:
            params["filename"] = filename
        return params

    def collect_json(
        self,
        stream: str,
        records: Iterable[dict[str, Any]],
        *,
        timestamp_field: str | None = None,
        dryrun: bool = False,
        filename: str | None = None,
        max_batch_bytes: int = MAX_BATCH_BYTES,
    ) -> CollectResult:
        """Post records to ``/collect/json/{stream}`` as JSON arrays of bounded size."""
        result = CollectResult()
        batch: list[bytes] = []
        size = 2
        for record in records:
            encoded = json.dumps(record, separators=(",", ":"), default=str).encode()
            if batch and size + len(encoded) + 1 > max_batch_bytes:
                self._post_json_batch(stream, batch, result, timestamp_field, dryrun, filename)
                batch, size = [], 2
            batch.append(encoded)
            size += len(encoded) + 1
        if batch:
            self._post_json_batch(stream, batch, result, timestamp_field, dryrun, filename)
        return result

    def _post_json_batch(
        self,
        stream: str,
        batch: list[bytes],
        result: CollectResult,
        timestamp_field: str | None,
        dryrun: bool,
        filename: str | None,
    ) -> None:
        params = self._collect_params(dryrun, timestamp_field, filename)
        body = b"[" + b",".join(batch) + b"]"
        answer = self.get_conn().json(
            "POST",
            f"/collect/json/{stream}",
            params=params,
            data=body,
            headers={"Content-Type": "application/json"},
        )
        result.add(answer.get("data") or {})

    def collect_bulk(
        self,
        stream: str,
        body: IO[bytes],
        *,
        content_type: str = "application/csv",
        gzipped: bool = False,
        timestamp_field: str | None = None,
        dryrun: bool = False,
        droperrors: bool = True,
        filename: str | None = None,
    ) -> CollectResult:
        """Upload one file body to ``{bulk_url}/collect/bulk/{stream}`` (CSV, or JSON lines)."""
        self.get_conn()
        params = self._collect_params(dryrun, timestamp_field, filename, droperrors=str(droperrors).lower())
        headers = {"Content-Type": content_type}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        answer = self.get_conn().json(
            "POST",
            f"{self._bulk_url}/collect/bulk/{stream}",
            params=params,
            data=body,
            headers=headers,
            proxies=get_environ_proxies(self._bulk_url) or {"http": None, "https": None},
        )
        result = CollectResult()
        result.add(answer.get("data") or {})
        return result
