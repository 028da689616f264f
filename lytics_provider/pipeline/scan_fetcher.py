"""Fetch an audience's scan pages in a child process, so fetching and storing run on two cores.

A scan is a chain: page N+1 can only be asked for with the cursor found in page N. In one
Python process the thread that follows that chain and the code that stores each page take
turns on the GIL, so storing a page delays the next request. Here a child process
(``python -m lytics_provider.pipeline.scan_fetcher``) follows the cursors alone and streams
each page body, as received, through a pipe; the task's process stores pages while the child
is already waiting for the next one. The pipe holds a few pages at most (the child blocks when
it is full), so memory stays bounded, and nothing is committed by the child: a page counts only
once the parent has stored it with its cursor, which keeps a retried scan exactly-once.

The child gets its settings, token included, on stdin (never on its command line), sends its
retry warnings back as log frames and reports failures as error frames, which the parent
raises as the same exceptions an in-process scan raises.

Frames: one type byte, a 4-byte little-endian length, then the payload:
``P`` page (4-byte meta length, JSON meta, body), ``L`` log line, ``E`` error, ``D`` done.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from lytics_provider.pipeline.http import (
    AuthError,
    ErrorTypes,
    HttpClient,
    PermanentServiceError,
    RetryPolicy,
    ServiceError,
    redact,
)
from lytics_provider.pipeline.lytics_scan import CursorExpiredError, RawScanPage, fetch_scan_page

_HEADER = struct.Struct("<cI")
_META_LEN = struct.Struct("<I")
PIPE_BYTES = 1024 * 1024
_F_SETPIPE_SZ = 1031


@dataclass(frozen=True)
class ScanJob:
    """Everything the child needs to follow one audience's scan cursors."""

    base_url: str
    headers: dict[str, str]
    segment_id: str
    start: str = ""
    limit: int = 100
    fields: list[str] | None = None
    params: dict[str, str] = field(default_factory=dict)
    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 60.0
    timeout: float = 121.0
    secrets: tuple[str, ...] = ()
    context: str = ""
    auth_fix: str = ""


class SubprocessScan:
    """Iterate the pages a child process fetches; ``calls`` counts its HTTP calls (retries included).

    The child's permanent and auth errors are raised as the classes of ``errors`` (the task's
    fail-fast classes when a hook passes them).
    """

    def __init__(self, job: ScanJob, log: logging.Logger, errors: ErrorTypes | None = None) -> None:
        self.job = job
        self.log = log
        self.errors = errors or ErrorTypes()
        self.calls = 0
        self.pid: int | None = None

    def __iter__(self) -> Iterator[RawScanPage]:
        with tempfile.TemporaryFile() as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", __name__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=_child_environment(),
            )
            self.pid = proc.pid
            try:
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write(json.dumps(asdict(self.job)).encode() + b"\n")
                proc.stdin.close()
                yield from self._pages(proc.stdout)
            finally:
                if proc.poll() is None:
                    proc.kill()
                code = proc.wait()
                if proc.stdout is not None:
                    proc.stdout.close()
                stderr.seek(0)
                tail = stderr.read()[-2000:].decode(errors="replace").strip()
                if code not in (0, -9) and tail:
                    self.log.warning("Scan fetcher exited with %s: %s", code, redact(tail, self.job.secrets))

    def _pages(self, stream: IO[bytes]) -> Iterator[RawScanPage]:
        while True:
            kind, payload = _read_frame(stream)
            if kind == b"P":
                size = _META_LEN.unpack_from(payload)[0]
                meta = json.loads(payload[4 : 4 + size])
                self.calls = meta["calls"]
                yield RawScanPage(
                    body=payload[4 + size :],
                    count=meta["count"],
                    next_cursor=meta["next"],
                    total=meta["total"],
                    start=meta["start"],
                )
            elif kind == b"L":
                line = json.loads(payload)
                self.log.log(line["level"], "%s", line["message"])
            elif kind == b"E":
                error = json.loads(payload)
                self.calls = error["calls"]
                raise _as_exception(error, self.errors)
            elif kind == b"D":
                self.calls = json.loads(payload)["calls"]
                return
            else:
                raise ServiceError("the scan fetcher process ended before the scan finished")


def _child_environment() -> dict[str, str]:
    """The task's environment without Airflow's settings (connections and secrets stay behind),
    with this package importable by the child."""
    root = str(Path(__file__).resolve().parents[2])
    env = {name: value for name, value in os.environ.items() if not name.startswith("AIRFLOW")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _read_frame(stream: IO[bytes]) -> tuple[bytes | None, bytes]:
    """The next frame from a buffered stream (whose ``read(n)`` is short only at EOF)."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None, b""
    kind, size = _HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        return None, b""
    return kind, payload


def _as_exception(error: dict[str, Any], errors: ErrorTypes) -> ServiceError:
    kinds: dict[str, type[ServiceError]] = {
        "cursor_expired": CursorExpiredError,
        "auth": errors.auth,
        "permanent": errors.permanent,
    }
    return kinds.get(error["kind"], ServiceError)(error["message"], error.get("status"), error.get("body"))


# -- child side --------------------------------------------------------------------------------
class _FrameLogHandler(logging.Handler):
    """Send the child's log records (retry warnings) to the parent as ``L`` frames."""

    def __init__(self, out: IO[bytes]) -> None:
        super().__init__(logging.INFO)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        _write_frame(self.out, b"L", json.dumps({"level": record.levelno, "message": record.getMessage()}))


def _write_frame(out: IO[bytes], kind: bytes, payload: bytes | str, *parts: bytes) -> None:
    data = payload.encode() if isinstance(payload, str) else payload
    out.write(_HEADER.pack(kind, len(data) + sum(map(len, parts))))
    out.write(data)
    for part in parts:
        out.write(part)
    out.flush()


def _widen_pipe(out: IO[bytes]) -> None:
    """Let a few pages wait in the pipe (Linux only; harmless elsewhere)."""
    try:
        import fcntl

        fcntl.fcntl(out.fileno(), _F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, OSError):
        pass


def run_child(job: ScanJob, out: IO[bytes]) -> None:
    """Follow the scan cursors from ``job.start`` and write every page to ``out``."""
    policy = RetryPolicy(max_attempts=job.max_attempts, base_delay=job.base_delay, max_delay=job.max_delay)
    client = HttpClient(
        base_url=job.base_url,
        headers=job.headers,
        secrets=job.secrets,
        policy=policy,
        timeout=job.timeout,
        context=job.context,
        auth_fix=job.auth_fix,
    )
    client.settle_environment()
    cursor = job.start
    try:
        while True:
            page = fetch_scan_page(client, job.segment_id, cursor, job.limit, job.fields, job.params)
            meta = json.dumps(
                {
                    "next": page.next_cursor,
                    "total": page.total,
                    "count": page.count,
                    "start": cursor,
                    "calls": client.calls,
                }
            ).encode()
            _write_frame(out, b"P", _META_LEN.pack(len(meta)) + meta, page.body)
            if page.last:
                break
            cursor = page.next_cursor
    except ServiceError as exc:
        kind = (
            "cursor_expired"
            if isinstance(exc, CursorExpiredError)
            else "auth"
            if isinstance(exc, AuthError)
            else "permanent"
            if isinstance(exc, PermanentServiceError)
            else "service"
        )
        message = redact(str(exc), job.secrets)
        error = {"kind": kind, "status": exc.status, "message": message, "calls": client.calls}
        _write_frame(out, b"E", json.dumps(error))
        return
    finally:
        client.close()
    _write_frame(out, b"D", json.dumps({"calls": client.calls}))


def main() -> int:
    """Child entry point: read the job from stdin, stream pages to stdout."""
    settings = json.loads(sys.stdin.readline())
    job = ScanJob(**{**settings, "secrets": tuple(settings.get("secrets") or ())})
    out = sys.stdout.buffer
    _widen_pipe(out)
    root = logging.getLogger()
    root.handlers[:] = [_FrameLogHandler(out)]
    root.setLevel(logging.INFO)
    with contextlib.suppress(BrokenPipeError):  # the task stopped reading: nothing left to do
        run_child(job, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
