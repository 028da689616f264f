"""Bounded disk: after a commit keep only the baseline run and the runs still in flight.

A job's run directories (``<data dir>/<job>/runs/<run>``) are pruned after each commit:

* the baseline run (the one just committed) keeps its ``snapshot.db`` (the next run's diff base)
  and its small outputs (rejects and report files); staged data (CSV/JSON drops, plan databases,
  downloads, checkpoints) is deleted;
* every other committed run is deleted (a ``.run_committed`` marker says a run committed);
* an uncommitted run is kept as in flight when it started after the baseline run started, or when
  anything in it changed since then (an overlapping manual run writes its pages, plans and
  checkpoints as it goes); otherwise it is a failed or abandoned run and is deleted.

``run_dir`` writes ``.run_started`` (nanoseconds) when it creates a run directory; directories from
before that marker fall back to their modification time.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from lytics_provider.pipeline.state_store import COMMITTED_MARKER, SNAPSHOT_NAME, mark_committed
from lytics_provider.pipeline.workarea import RUN_STARTED_MARKER, job_dir, safe_name

log = logging.getLogger(__name__)

KEEP_IN_BASELINE = (f"{SNAPSHOT_NAME}*", "*reject*", "*report*", RUN_STARTED_MARKER, COMMITTED_MARKER)


@dataclass
class PruneResult:
    """What a prune removed (or would remove, in a dry run)."""

    freed_bytes: int = 0
    removed_runs: list[str] = field(default_factory=list)
    removed_files: int = 0
    kept_runs: list[str] = field(default_factory=list)
    removed_paths: list[Path] = field(default_factory=list, repr=False)

    def add(self, other: PruneResult) -> None:
        """Add another result's counts to this one."""
        self.freed_bytes += other.freed_bytes
        self.removed_runs += other.removed_runs
        self.removed_files += other.removed_files
        self.kept_runs += other.kept_runs
        self.removed_paths += other.removed_paths


def run_started(folder: Path) -> float:
    """When a run directory was created, in seconds since the epoch."""
    try:
        return int((folder / RUN_STARTED_MARKER).read_text().strip() or 0) / 1e9
    except (FileNotFoundError, ValueError):
        return folder.stat().st_mtime


def last_activity(folder: Path) -> float:
    """The newest modification time of a directory and everything in it."""
    newest = folder.stat().st_mtime
    for base, dirs, files in os.walk(folder):
        for name in dirs + files:
            try:
                newest = max(newest, (Path(base) / name).stat().st_mtime)
            except FileNotFoundError:
                continue
    return newest


def tree_bytes(path: Path) -> tuple[int, int]:
    """Bytes and file count under ``path`` (a file or a directory)."""
    if path.is_file():
        return path.stat().st_size, 1
    total = count = 0
    for base, _, files in os.walk(path):
        for name in files:
            try:
                total += (Path(base) / name).stat().st_size
                count += 1
            except FileNotFoundError:
                continue
    return total, count


def is_committed(folder: Path) -> bool:
    """Whether a run directory belongs to a committed run."""
    return (folder / COMMITTED_MARKER).exists()


def _remove(path: Path, result: PruneResult, dry_run: bool) -> None:
    size, count = tree_bytes(path)
    result.freed_bytes += size
    result.removed_files += count
    result.removed_paths.append(path)
    if dry_run:
        return
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def strip_baseline(folder: Path, result: PruneResult, dry_run: bool = False) -> None:
    """Delete the staged data of the baseline run, keeping its snapshot, rejects and reports."""
    for base, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            if not any(fnmatch.fnmatch(name, pattern) for pattern in KEEP_IN_BASELINE):
                _remove(Path(base) / name, result, dry_run)
        for name in dirs:
            sub = Path(base) / name
            if not dry_run and sub.is_dir() and not any(sub.iterdir()):
                sub.rmdir()


def prune_runs(runs: Path, baseline: str | None, dry_run: bool = False) -> PruneResult:
    """Prune the run directories in ``runs`` around the baseline run directory named ``baseline``."""
    result = PruneResult()
    if not runs.is_dir():
        return result
    folders = sorted(p for p in runs.iterdir() if p.is_dir())
    anchor = runs / baseline if baseline else None
    if anchor is None or not anchor.is_dir():
        # no known baseline: only runs that committed (and are not the newest one) go
        committed = [p for p in folders if is_committed(p)]
        anchor = max(committed, key=run_started) if committed else None
        if anchor is None:
            result.kept_runs = [p.name for p in folders]
            return result
    since = run_started(anchor)
    for folder in folders:
        if folder == anchor:
            strip_baseline(folder, result, dry_run)
            result.kept_runs.append(folder.name)
        elif not is_committed(folder) and (run_started(folder) > since or last_activity(folder) >= since):
            result.kept_runs.append(folder.name)
        else:
            _remove(folder, result, dry_run)
            result.removed_runs.append(folder.name)
    return result


def prune_job_runs(job_id: str, run_id: str) -> PruneResult:
    """After run ``run_id`` of ``job_id`` committed: mark it and prune the job's other runs.

    A file that cannot be deleted is logged and left for ``lytics-airflow gc``: the run has
    already committed, so retention never fails it.
    """
    runs = job_dir(job_id) / "runs"
    own = runs / safe_name(run_id)
    try:
        if own.is_dir():
            mark_committed(own)
        result = prune_runs(runs, safe_name(run_id))
    except OSError as exc:
        log.warning("Retention for job %s stopped (%s); run `lytics-airflow gc` to finish it", job_id, exc)
        return PruneResult()
    log.info(
        "Retention for job %s: freed %d bytes, removed %d run dir(s) %s, kept %s",
        job_id,
        result.freed_bytes,
        len(result.removed_runs),
        result.removed_runs[:10],
        result.kept_runs,
    )
    return result


def older_than(path: Path, seconds: float, now: float | None = None) -> bool:
    """Whether nothing under ``path`` changed in the last ``seconds``."""
    mtime = last_activity(path) if path.is_dir() else path.stat().st_mtime
    return mtime < (now if now is not None else time.time()) - seconds


def bytes_per_member(snapshot: Path, members: int | None) -> float | None:
    """Snapshot file size divided by its members (None when either is unknown)."""
    if not members or not snapshot.is_file():
        return None
    return round(snapshot.stat().st_size / members, 1)


LEFTOVER_AGE_SECONDS = 24 * 3600
NOT_JOBS = ("ratelimit", "shared_scans")


@dataclass
class JobGcReport:
    """What ``gc_data_dir`` did to one job directory."""

    job: str
    result: PruneResult
    baseline: str | None
    snapshot_bytes: int | None = None
    bytes_per_member: float | None = None


def _baseline_of(folder: Path) -> tuple[str | None, int | None]:
    """The committed baseline run directory name and member count from a job's ``state.json``."""
    import json

    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None, None
    run_id = state.get("last_run_id")
    members = (state.get("last_report") or {}).get("members")
    return (safe_name(run_id) if run_id else None), (int(members) if isinstance(members, int) else None)


def _count_members(snapshot: Path) -> int | None:
    import sqlite3

    try:
        db = sqlite3.connect(f"file:{snapshot}?mode=ro", uri=True)
        try:
            return int(db.execute("SELECT count(*) FROM members").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return None


def gc_data_dir(root: Path, dry_run: bool = False) -> tuple[list[JobGcReport], PruneResult]:
    """Prune every job of a data dir as a commit would, and delete day-old leftovers.

    Leftovers are shared scan directories (``shared_scans/*``) and ``*.part`` files in which
    nothing changed for a day. Returns one report per job and one for the leftovers.
    """
    reports: list[JobGcReport] = []
    leftovers = PruneResult()
    if not root.is_dir():
        raise FileNotFoundError(f"data dir {root} does not exist; pass --data-dir or set LYTICS_DATA_DIR")
    now = time.time()
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in NOT_JOBS):
        if not (folder / "runs").is_dir():
            continue
        baseline, members = _baseline_of(folder)
        result = prune_runs(folder / "runs", baseline, dry_run)
        report = JobGcReport(folder.name, result, baseline)
        snapshot = folder / "runs" / baseline / SNAPSHOT_NAME if baseline else None
        if snapshot is not None and snapshot.is_file():
            report.snapshot_bytes = snapshot.stat().st_size
            report.bytes_per_member = bytes_per_member(snapshot, members or _count_members(snapshot))
        reports.append(report)
    shared = root / "shared_scans"
    if shared.is_dir():
        for entry in sorted(shared.iterdir()):
            if older_than(entry, LEFTOVER_AGE_SECONDS, now):
                _remove(entry, leftovers, dry_run)
                leftovers.removed_runs.append(f"shared_scans/{entry.name}")
    counted = {path for report in reports for path in report.result.removed_paths}
    counted.update(leftovers.removed_paths)
    for base, _, files in os.walk(root):
        for name in files:
            path = Path(base) / name
            if not name.endswith(".part") or not path.exists() or {path, *path.parents} & counted:
                continue
            if older_than(path, LEFTOVER_AGE_SECONDS, now):
                _remove(path, leftovers, dry_run)
    return reports, leftovers
