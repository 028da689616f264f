"""Committed job state and baseline snapshots in object storage (``LYTICS_STATE_URL``).

Without ``LYTICS_STATE_URL`` everything stays in ``LYTICS_DATA_DIR`` as before. With it, e.g.
``s3://aws_state@my-bucket/lytics``, ``gs://my-bucket/lytics`` or ``file:///shared/lytics_state``
(read through Airflow's ``ObjectStoragePath``; the connection comes from the URL's user part or
``LYTICS_STATE_CONN_ID``), each job keeps::

    <url>/<job_id>/state.json                          the committed state (the authority)
    <url>/<job_id>/baselines/<run_id>.snapshot.db.gz   the baseline snapshot of the last commit

A commit uploads the run's snapshot first (gzip level 1, 8 MB members compressed in parallel,
streamed), then writes ``state.json`` naming that object, then deletes older baseline objects: a
crash in between leaves the state on the previous, still present baseline, and a retried commit
uploads the same object name again.
``state.json`` is replaced atomically: on object stores by one PUT (readers see the old or the
new object, never a part), on ``file://`` through a temporary file and a rename.
A run on a worker whose data dir lacks the baseline downloads it (``baseline_snapshot``).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import uuid
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lytics_provider.pipeline.workarea import job_dir, safe_name

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)

STATE_URL_ENV = "LYTICS_STATE_URL"
STATE_CONN_ENV = "LYTICS_STATE_CONN_ID"
SNAPSHOT_NAME = "snapshot.db"
BASELINE_SUFFIX = ".snapshot.db.gz"
# gzip level 1: measured by bench.state_and_retention (zstandard is not a dependency of this project).
COMPRESS_LEVEL = 1
CHUNK_BYTES = 1 << 20
# uncompressed bytes per gzip member (compressed in parallel)
BLOCK_BYTES = 8 << 20
# chunks in flight between the compressing (or downloading) thread and the writing one
PIPELINE_DEPTH = 8
_GZIP_WBITS = 31
_LOCAL_PROTOCOLS = ("file", "local", "")


def state_root() -> ObjectStoragePath | None:
    """The root of ``LYTICS_STATE_URL``, or None when it is not set."""
    url = os.environ.get(STATE_URL_ENV, "").strip()
    if not url:
        return None
    return _root(url, os.environ.get(STATE_CONN_ENV, "").strip() or None)


@lru_cache(maxsize=8)
def _root(url: str, conn_id: str | None) -> ObjectStoragePath:
    from airflow.sdk import ObjectStoragePath

    if "://" not in url:
        raise ValueError(
            f"{STATE_URL_ENV}={url!r} has no scheme; use s3://[conn_id@]bucket/prefix, "
            "gs://[conn_id@]bucket/prefix or file:///absolute/path"
        )
    if conn_id:
        return ObjectStoragePath(url.rstrip("/"), conn_id=conn_id)
    return ObjectStoragePath(url.rstrip("/"))


def _is_local(path: ObjectStoragePath) -> bool:
    return (path.protocol or "") in _LOCAL_PROTOCOLS


def _job_root(root: ObjectStoragePath, job_id: str) -> ObjectStoragePath:
    return root / safe_name(job_id)


def _replace_object(target: ObjectStoragePath, write: Any) -> None:
    """Call ``write(handle)`` to fill ``target``; on ``file://`` through a temporary file and a rename."""
    if not _is_local(target):
        handle = target.open("wb")
        try:
            write(handle)
        except BaseException:
            # abort the multipart/resumable upload instead of closing it, which would publish a part
            discard = getattr(handle, "discard", None)
            if callable(discard):
                discard()
            raise
        handle.close()
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        with temporary.open("wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary.path, target.path)
    finally:
        if temporary.exists():
            temporary.unlink()


# -- state.json --------------------------------------------------------------------------------
def read_state(job_id: str) -> dict[str, Any] | None:
    """The committed state of ``job_id`` in the store, or None when there is none."""
    import json

    root = state_root()
    if root is None:
        return None
    target = _job_root(root, job_id) / "state.json"
    try:
        return json.loads(target.read_bytes())
    except FileNotFoundError:
        return None


def write_state(job_id: str, text: str) -> None:
    """Replace the committed state of ``job_id`` in the store (atomically, see the module doc)."""
    root = state_root()
    if root is None:
        raise RuntimeError(f"{STATE_URL_ENV} is not set")
    data = text.encode("utf-8")
    _replace_object(_job_root(root, job_id) / "state.json", lambda handle: handle.write(data))


# -- baseline snapshots --------------------------------------------------------------------------
def _gzip_chunks(path: Path) -> Iterator[bytes]:
    """``path`` gzip-compressed as one gzip member per block, blocks compressed on every core.

    A multi-member gzip file is one valid gzip stream (``gzip -d`` reads it); zlib releases the
    GIL while it compresses, so the blocks compress in parallel, in order, a few blocks ahead.
    """
    workers = max(1, min(4, os.cpu_count() or 1))
    with path.open("rb") as source, ThreadPoolExecutor(workers, thread_name_prefix="lytics-gzip") as pool:
        pending: deque[Future[bytes]] = deque()
        while block := source.read(BLOCK_BYTES):
            pending.append(pool.submit(zlib.compress, block, COMPRESS_LEVEL, _GZIP_WBITS))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _gunzip(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Decompress a gzip stream of one or more members; EOFError when it ends inside a member."""
    unpack = zlib.decompressobj(_GZIP_WBITS)
    between_members = True
    for piece in pieces:
        while piece:
            between_members = False
            if out := unpack.decompress(piece):
                yield out
            if not unpack.eof:
                break
            piece = unpack.unused_data
            unpack = zlib.decompressobj(_GZIP_WBITS)
            between_members = True
    if not between_members:
        raise EOFError("the gzip stream ends inside a member")


def _read_chunks(handle: Any) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK_BYTES):
        yield chunk


def _ahead(chunks: Iterator[bytes], depth: int) -> Iterator[bytes]:
    """Iterate ``chunks`` produced by a thread up to ``depth`` items ahead (bounded memory).

    Compressing and uploading (or downloading and unpacking) then overlap on two cores.
    """
    pending: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()
    failure: list[BaseException] = []

    def hand_over(item: Any) -> bool:
        """Queue ``item`` once there is room; False when the consumer stopped first."""
        while not stop.is_set():
            try:
                pending.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not hand_over(chunk):
                    return
        except BaseException as exc:
            failure.append(exc)
        finally:
            hand_over(done)

    worker = threading.Thread(target=produce, name="lytics-state-pipeline", daemon=True)
    worker.start()
    try:
        while (item := pending.get()) is not done:
            yield item
    finally:
        stop.set()
        worker.join()
    if failure:
        raise failure[0]


def baseline_object_name(run_id: str) -> str:
    """The object name of a run's baseline snapshot."""
    return safe_name(run_id) + BASELINE_SUFFIX


def upload_baseline(job_id: str, run_id: str, snapshot: Path) -> dict[str, Any]:
    """Compress and upload ``snapshot`` as the baseline of ``run_id``; return what the state records."""
    root = state_root()
    if root is None:
        raise RuntimeError(f"{STATE_URL_ENV} is not set")
    name = baseline_object_name(run_id)
    target = _job_root(root, job_id) / "baselines" / name
    raw_bytes = snapshot.stat().st_size

    def write(handle: Any) -> None:
        for piece in _ahead(_gzip_chunks(snapshot), PIPELINE_DEPTH):
            handle.write(piece)

    _replace_object(target, write)
    stored = target.stat().st_size
    log.info("Uploaded baseline %s (%d bytes, %d compressed) to %s", snapshot, raw_bytes, stored, target)
    return {"object": name, "run_id": run_id, "raw_bytes": raw_bytes, "bytes": stored}


def download_baseline(job_id: str, baseline: dict[str, Any], dest: Path) -> Path:
    """Download and decompress a baseline object to ``dest`` (streamed; checked against its size)."""
    root = state_root()
    if root is None:
        raise RuntimeError(f"{STATE_URL_ENV} is not set")
    source = _job_root(root, job_id) / "baselines" / baseline["object"]
    dest.parent.mkdir(parents=True, exist_ok=True)
    temporary = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.download")
    try:
        try:
            with source.open("rb") as raw, temporary.open("wb") as out:
                for piece in _gunzip(_ahead(_read_chunks(raw), PIPELINE_DEPTH)):
                    out.write(piece)
        except (EOFError, zlib.error) as exc:
            raise OSError(
                f"baseline {source} is truncated or corrupt ({exc}); run with full_refresh to rebuild it"
            ) from exc
        size = temporary.stat().st_size
        if baseline.get("raw_bytes") not in (None, size):
            raise OSError(
                f"baseline {source} unpacked to {size} bytes, the state records {baseline['raw_bytes']}; "
                "run with full_refresh to rebuild it"
            )
        for journal in ("-wal", "-shm"):  # of an older file at dest: never replayed onto this one
            dest.with_name(dest.name + journal).unlink(missing_ok=True)
        os.replace(temporary, dest)
    finally:
        temporary.unlink(missing_ok=True)
    log.info("Downloaded baseline %s to %s (%d bytes)", source, dest, dest.stat().st_size)
    return dest


def delete_old_baselines(job_id: str, keep: str) -> int:
    """Delete every baseline object of ``job_id`` except ``keep``; return how many went."""
    root = state_root()
    if root is None:
        return 0
    folder = _job_root(root, job_id) / "baselines"
    if not folder.exists():
        return 0
    removed = 0
    for entry in list(folder.iterdir()):
        if entry.name != keep and entry.name.endswith(BASELINE_SUFFIX):
            entry.unlink()
            removed += 1
    return removed


def _baseline_path(job_id: str, run_id: str) -> Path:
    return job_dir(job_id) / "runs" / safe_name(run_id) / SNAPSHOT_NAME


def baseline_snapshot(job_id: str) -> Path | None:
    """The committed baseline snapshot of ``job_id`` on this worker, or None when there is none.

    Uses the local file when it is present and has the committed size; otherwise downloads it
    from ``LYTICS_STATE_URL`` into the committed run's directory. None (with a warning when a
    baseline was committed) means every member counts as an enter.
    """
    from lytics_provider.pipeline.workarea import JobState

    state = JobState(job_id).load()
    recorded = state.get("last_snapshot")
    if not recorded:
        return None
    run_id = state.get("last_run_id")
    baseline = state.get("baseline") or {}
    # the committed run's snapshot in this worker's data dir (the recorded path is another worker's)
    candidates = [_baseline_path(job_id, run_id)] if run_id else [Path(recorded)]
    for path in candidates:
        if path.is_file() and baseline.get("raw_bytes") in (None, path.stat().st_size):
            return path
    if baseline.get("object") and run_id and state_root() is not None:
        from lytics_provider.pipeline.workarea import RUN_STARTED_MARKER, atomic_write_text

        dest = _baseline_path(job_id, run_id)
        download_baseline(job_id, baseline, dest)
        # a committed run: older than any run in flight (see pipeline.retention)
        atomic_write_text(dest.parent / RUN_STARTED_MARKER, "0")
        mark_committed(dest.parent)
        return dest
    for path in candidates:
        if path.is_file():
            log.warning("Baseline %s differs from the committed size; using it as it is", path)
            return path
    log.warning("The last committed snapshot %s is gone; every member counts as an enter", recorded)
    return None


COMMITTED_MARKER = ".run_committed"


def mark_committed(folder: Path) -> None:
    """Mark a run directory as belonging to a committed run (never in flight again)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / COMMITTED_MARKER).touch()


def commit_baseline(job_id: str, run_id: str, snapshot: str, report: dict[str, Any]) -> dict[str, Any]:
    """Make ``snapshot`` the job's baseline: upload it (with a state URL), then write the state.

    Safe to retry: the object is named by the run id, and a retry after the state was written
    finds the state already naming this run's object and skips the upload.
    """
    from lytics_provider.pipeline.workarea import JobState

    state = JobState(job_id)
    values: dict[str, Any] = {"last_snapshot": snapshot, "last_run_id": run_id, "last_report": report}
    root = state_root()
    if root is not None:
        current = state.load()
        baseline = current.get("baseline") if current.get("last_run_id") == run_id else None
        target = baseline and _job_root(root, job_id) / "baselines" / baseline["object"]
        if not baseline or not target.exists():
            baseline = upload_baseline(job_id, run_id, Path(snapshot))
        values["baseline"] = baseline
    else:
        values["baseline"] = {"run_id": run_id, "raw_bytes": Path(snapshot).stat().st_size}
    saved = state.update(**values)
    mark_committed(Path(snapshot).parent)
    if root is not None:
        removed = delete_old_baselines(job_id, keep=values["baseline"]["object"])
        if removed:
            log.info("Deleted %d older baseline object(s) of job %s", removed, job_id)
    return saved
