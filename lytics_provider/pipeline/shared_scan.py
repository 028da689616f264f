"""One audience scan shared by every job that needs the same audience within a freshness window.

Shared scans live under ``data_root()/shared_scans/<key>/``, ``key`` a hash of the Lytics API
URL, the account id, the audience (segment) id and the member key field::

    lease.<n>                 who scans now: owner, scan id, fields, heartbeat (highest n counts)
    <scan id>/snapshot.db     the scan (a resumable Snapshot)
    <scan id>/scan.json       written once the scan is complete and closed: fields, finish time
    <scan id>/used/<job>      which job read the scan, for which run

Only the holder of the highest-numbered lease scans. A lease is taken by creating the next
number with ``O_CREAT | O_EXCL`` (one process wins, also on a shared volume) and its heartbeat is
rewritten through a temporary file and ``os.replace`` after committed pages (at most once a
second). A lease whose heartbeat is older than :func:`stale_after_seconds`
(``LYTICS_SHARED_SCAN_STALE_SECONDS``, default 120) belongs to a crashed scanner: the next job
takes the following number and resumes the scan from its last committed page. A scanner that
finds a higher lease than its own has lost it and stops before its next page. A retry of the
task that held the lease takes it over at once: two attempts of one task instance never run
together, so the holder is gone.

Nothing here talks to Lytics: the caller passes the function that scans into a snapshot.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lytics_provider.pipeline.snapshot import Snapshot
from lytics_provider.pipeline.workarea import atomic_write_text, data_root, safe_name

STALE_AFTER_SECONDS = 120.0
POLL_SECONDS = 1.0
HEARTBEAT_EVERY_SECONDS = 1.0
SCAN_DONE_FILE = "scan.json"
_LEASE = re.compile(r"^lease\.(\d+)$")


def stale_after_seconds() -> float:
    """Seconds without a heartbeat after which a scanner counts as crashed (env override)."""
    return float(os.environ.get("LYTICS_SHARED_SCAN_STALE_SECONDS") or STALE_AFTER_SECONDS)


def poll_seconds() -> float:
    """Seconds between two looks at a scan another job is running (env override)."""
    return float(os.environ.get("LYTICS_SHARED_SCAN_POLL_SECONDS") or POLL_SECONDS)


def shared_scan_key(api_url: str, account_id: str | None, segment_id: str, key_field: str = "_uid") -> str:
    """The directory name of one audience's shared scans (no secret goes into it)."""
    text = json.dumps([api_url.rstrip("/"), account_id or "", segment_id, key_field])
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def task_name(job: str, run: str) -> str:
    """Names one task instance (a job's run) in lease files."""
    return f"{job} {run}"


def covers(scanned: Sequence[str] | None, needed: Sequence[str] | None) -> bool:
    """True when a scan of ``scanned`` fields (None: all) holds every field in ``needed``."""
    if scanned is None:
        return True
    return needed is not None and set(needed) <= set(scanned)


class LeaseLost(Exception):
    """Another job took over the scan (this one's heartbeat went stale)."""


@dataclass(frozen=True)
class LeaseInfo:
    """What a lease file says."""

    number: int
    owner: str
    task: str
    scan_id: str
    fields: list[str] | None
    heartbeat: float
    released: bool

    def stale(self, now: float, limit: float) -> bool:
        """True when the holder has not shown life for ``limit`` seconds."""
        return now - self.heartbeat > limit


@dataclass(frozen=True)
class CompletedScan:
    """A complete shared scan: where its snapshot is, what it fetched and when it finished."""

    directory: Path
    fields: list[str] | None
    finished_at: float
    members: int

    @property
    def snapshot(self) -> Path:
        """The scan's (closed) snapshot file."""
        return self.directory / "snapshot.db"

    @property
    def scan_id(self) -> str:
        """The scan's directory name."""
        return self.directory.name


class SharedScanArea:
    """The shared scans of one audience (one ``key`` directory)."""

    def __init__(self, key: str, root: Path | None = None) -> None:
        self.directory = (root or data_root() / "shared_scans") / key
        self.directory.mkdir(parents=True, exist_ok=True)

    # -- leases -----------------------------------------------------------------------------
    def _lease_numbers(self) -> list[int]:
        return sorted(int(m.group(1)) for name in os.listdir(self.directory) if (m := _LEASE.match(name)))

    def _lease_path(self, number: int) -> Path:
        return self.directory / f"lease.{number}"

    def current_lease(self) -> LeaseInfo | None:
        """The lease with the highest number, or None when nobody ever scanned here."""
        numbers = self._lease_numbers()
        if not numbers:
            return None
        path = self._lease_path(numbers[-1])
        try:
            text = path.read_text(encoding="utf-8")
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            return self.current_lease()
        try:
            data = json.loads(text)
        except ValueError:  # just created, content not written yet: alive as of its mtime; wait
            return LeaseInfo(numbers[-1], "", "", "", None, mtime, False)
        return LeaseInfo(
            number=numbers[-1],
            owner=str(data.get("owner", "")),
            task=str(data.get("task", "")),
            scan_id=str(data.get("scan_id", "")),
            fields=data.get("fields"),
            heartbeat=float(data.get("heartbeat", mtime)),
            released=bool(data.get("released")),
        )

    def acquire(
        self, after: LeaseInfo | None, fields: list[str] | None, task: str, resume_within: float
    ) -> ScanLease | None:
        """Take the lease that follows ``after`` (None when another job took it first).

        The new holder continues ``after``'s scan when it is unfinished, fetched the same fields
        and showed life less than ``resume_within`` seconds ago (older pages would mix data of
        different times), else starts a new scan directory.
        """
        number = (after.number if after else 0) + 1
        scan_id = ""
        if (
            after
            and after.scan_id
            and after.fields == fields
            and time.time() - after.heartbeat <= resume_within
            and self._resumable(after.scan_id)
        ):
            scan_id = after.scan_id
        if not scan_id:
            scan_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        lease = ScanLease(self, number, owner, task, scan_id, fields)
        try:
            fd = os.open(lease.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return None
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(lease.record(time.time())))
        lease.scan_dir.mkdir(parents=True, exist_ok=True)
        for older in self._lease_numbers():
            if older < number:
                self._lease_path(older).unlink(missing_ok=True)
        return lease

    def _resumable(self, scan_id: str) -> bool:
        scan_dir = self.directory / scan_id
        return (scan_dir / "snapshot.db").exists() and not (scan_dir / SCAN_DONE_FILE).exists()

    def newer_lease_than(self, number: int) -> bool:
        """True when someone took a lease after ``number``."""
        numbers = self._lease_numbers()
        return bool(numbers) and numbers[-1] > number

    # -- complete scans ---------------------------------------------------------------------
    def completed_scans(self) -> list[CompletedScan]:
        """Every complete scan here, newest first."""
        found = []
        for entry in self.directory.iterdir():
            try:
                data = json.loads((entry / SCAN_DONE_FILE).read_text(encoding="utf-8"))
            except (FileNotFoundError, NotADirectoryError, ValueError):
                continue
            found.append(
                CompletedScan(entry, data.get("fields"), float(data["finished_at"]), int(data["members"]))
            )
        return sorted(found, key=lambda scan: scan.finished_at, reverse=True)

    def fresh_scan(
        self, needed: list[str] | None, max_age_seconds: float, job: str, run: str
    ) -> CompletedScan | None:
        """The newest complete scan younger than ``max_age_seconds`` holding ``needed`` fields that
        no other run of ``job`` has read (a job's next run never gets its last run's data again)."""
        now = time.time()
        for scan in self.completed_scans():
            if now - scan.finished_at > max_age_seconds:
                break
            if covers(scan.fields, needed) and self._read_by(scan, job) in (None, run):
                return scan
        return None

    @staticmethod
    def _read_by(scan: CompletedScan, job: str) -> str | None:
        try:
            return (scan.directory / "used" / safe_name(job)).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def note_reader(self, scan: CompletedScan, job: str, run: str) -> None:
        """Record that ``run`` of ``job`` read ``scan``."""
        atomic_write_text(scan.directory / "used" / safe_name(job), run)

    def forget_all_but(self, keep: str) -> None:
        """Delete every scan directory except ``keep`` (older scans, abandoned partial ones).

        A job copying an older scan at that moment keeps reading its open file; one about to
        open it finds it gone and looks again.
        """
        for entry in self.directory.iterdir():
            if entry.is_dir() and entry.name != keep:
                shutil.rmtree(entry, ignore_errors=True)


class ScanLease:
    """The lease a scanning job holds: heartbeats, and the scan directory it writes."""

    def __init__(
        self,
        area: SharedScanArea,
        number: int,
        owner: str,
        task: str,
        scan_id: str,
        fields: list[str] | None,
    ) -> None:
        self.area = area
        self.number = number
        self.owner = owner
        self.task = task
        self.scan_id = scan_id
        self.fields = fields
        self.scan_dir = area.directory / scan_id
        self._beat = 0.0

    @property
    def path(self) -> Path:
        """The lease file."""
        return self.area.directory / f"lease.{self.number}"

    def check(self) -> None:
        """Raise :class:`LeaseLost` when another job took over."""
        if self.area.newer_lease_than(self.number):
            raise LeaseLost(f"another job took over shared scan {self.scan_id}")

    def heartbeat(self, force: bool = False, released: bool = False) -> None:
        """Tell the others this scanner is alive (at most once a second unless ``force``)."""
        now = time.time()
        if not force and now - self._beat < HEARTBEAT_EVERY_SECONDS:
            return
        self.check()
        atomic_write_text(self.path, json.dumps(self.record(now, released)))
        self._beat = now

    def record(self, heartbeat: float, released: bool = False) -> dict[str, Any]:
        """The lease file's content."""
        return {
            "owner": self.owner,
            "task": self.task,
            "scan_id": self.scan_id,
            "fields": self.fields,
            "heartbeat": heartbeat,
            "released": released,
        }

    def complete(self, members: int) -> CompletedScan:
        """Publish the finished scan (its snapshot must be closed) and release the lease."""
        finished = time.time()
        record = {"fields": self.fields, "finished_at": finished, "members": members, "owner": self.owner}
        atomic_write_text(self.scan_dir / SCAN_DONE_FILE, json.dumps(record))
        self.release()
        self.area.forget_all_but(self.scan_id)
        return CompletedScan(self.scan_dir, self.fields, finished, members)

    def release(self) -> None:
        """Let the next job take the lease at once (an unfinished scan stays resumable)."""
        with contextlib.suppress(LeaseLost):
            self.heartbeat(force=True, released=True)


class LeasedSnapshot(Snapshot):
    """A shared scan's snapshot that stops when its lease is lost and heartbeats on every page."""

    def __init__(self, path: Path, lease: ScanLease, identity_fields: Sequence[str] | None = None) -> None:
        super().__init__(path, identity_fields=identity_fields)
        self.lease = lease

    def add_raw_page(self, *args: Any, **kwargs: Any) -> int:
        """Store a page (see :meth:`Snapshot.add_raw_page`) while this job still holds the lease."""
        self.lease.check()
        rows = super().add_raw_page(*args, **kwargs)
        self.lease.heartbeat()
        return rows


def copy_snapshot(source: Path, target: Path) -> None:
    """Copy a closed snapshot file to ``target`` (replacing it and any journal it had)."""
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    part = target.with_name(f".{target.name}.part")
    shutil.copyfile(source, part)
    os.replace(part, target)


@dataclass(frozen=True)
class SharedScanResult:
    """The complete shared scan a job got, and whether this job ran it."""

    scan: CompletedScan
    scanned_here: bool


@dataclass(frozen=True)
class SharedScanRequest:
    """What one job asks of the audience's shared scans.

    :param needed: the fields the job needs (None: all).
    :param fields: what to fetch when this job runs the scan, for every job sharing it.
    :param max_age_seconds: how old a complete scan may be and still serve.
    :param job: the job (a job's next run never gets its last run's data again).
    :param run: the job's run.
    :param scan: fills a snapshot from Lytics when this job runs the scan.
    :param log: where waits and takeovers are told.
    :param identity_fields: the fields that key a member in the snapshot.
    """

    needed: list[str] | None
    fields: list[str] | None
    max_age_seconds: float
    job: str
    run: str
    scan: Callable[[Snapshot], None]
    log: Any
    identity_fields: Sequence[str] | None = None


def read_shared_scan(
    area: SharedScanArea, target: Path, request: SharedScanRequest
) -> SharedScanResult | None:
    """Copy a complete shared scan to ``target`` (see :func:`obtain_shared_scan`), or return None
    when the job must scan on its own."""
    while True:
        got = obtain_shared_scan(area, request)
        if got is None:
            return None
        try:
            copy_snapshot(got.scan.snapshot, target)
        except FileNotFoundError:
            request.log.info("Shared scan %s was replaced while copying it; looking again", got.scan.scan_id)
            continue
        area.note_reader(got.scan, request.job, request.run)
        return got


def obtain_shared_scan(area: SharedScanArea, request: SharedScanRequest) -> SharedScanResult | None:
    """A complete shared scan holding ``needed`` fields: a fresh one, one another job is running
    (waited for), or one this job runs with ``scan`` (fetching ``fields``).

    Returns None when another job is scanning fields that do not hold ``needed``: the caller
    scans on its own.
    """
    log = request.log
    limit = stale_after_seconds()
    task = task_name(request.job, request.run)
    waited_since: float | None = None
    last_note = 0.0
    while True:
        fresh = area.fresh_scan(request.needed, request.max_age_seconds, request.job, request.run)
        if fresh is not None:
            return SharedScanResult(fresh, scanned_here=False)
        lease = area.current_lease()
        now = time.time()
        earlier_attempt = lease is not None and lease.task == task
        if lease is not None and not lease.released and not lease.stale(now, limit) and not earlier_attempt:
            if not covers(lease.fields, request.needed):
                log.info("Another job scans this audience without a field this job needs; scanning alone")
                return None
            waited_since = waited_since or now
            if now - last_note >= 60:
                log.info(
                    "Waiting for shared scan %s (%s) for %.0f s",
                    lease.scan_id,
                    lease.owner,
                    now - waited_since,
                )
                last_note = now
            time.sleep(poll_seconds())
            continue
        if earlier_attempt and lease is not None and not lease.released:
            log.info(
                "Shared scan %s was run by an earlier attempt of this task; taking it over", lease.scan_id
            )
        elif lease is not None and not lease.released:
            log.warning(
                "Shared scan %s: no heartbeat from %s for %.0f s (limit %.0f s); taking it over",
                lease.scan_id,
                lease.owner,
                now - lease.heartbeat,
                limit,
            )
        held = area.acquire(lease, request.fields, task, request.max_age_seconds)
        if held is None:
            continue
        try:
            with LeasedSnapshot(held.scan_dir / "snapshot.db", held, request.identity_fields) as snapshot:
                resumed = snapshot.checkpoint.pages
                if resumed:
                    log.info("Continuing shared scan %s after %d committed pages", held.scan_id, resumed)
                request.scan(snapshot)
                members = snapshot.count()
        except LeaseLost as exc:
            log.warning("%s; waiting for it instead", exc)
            continue
        except BaseException:
            held.release()
            raise
        return SharedScanResult(held.complete(members), scanned_here=True)


def adopt_shared_copy(
    path: Path,
    *,
    segment_id: str,
    scan: CompletedScan,
    scanned_here: bool,
    own_fields: list[str] | None,
    digest_fields: list[str] | None,
    render_signature: str | None,
) -> None:
    """Give a job's copy of a shared scan the job's own settings (and note ``scan_shared_from``,
    the shared scan's directory, unless this job ran the scan).

    Changes are judged on ``digest_fields``, else on the job's own fields when the shared scan
    fetched more (a change in a field the job does not use is no change for it). Rows the
    scanning job rendered for another file layout are dropped, so ``deliver`` renders its own.
    """
    digest = digest_fields or (own_fields if scan.fields != own_fields else None)
    with Snapshot(path) as snapshot:
        snapshot.set_meta("digest_fields", json.dumps(digest) if digest else "")
        snapshot.set_meta("segment_id", segment_id)
        snapshot.set_meta("scan_shared_from", "" if scanned_here else str(scan.directory))
        if render_signature is not None:
            snapshot.use_renderer(render_signature)
