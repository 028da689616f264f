"""Checkpoints under fire: a scan or delivery that dies halfway resumes and delivers everyone once.

Two ways to die: the Lytics sandbox drops connections until the scan task gives up (the task's
retry resumes in the same process), and the worker process itself is SIGKILLed mid-scan and
mid-upload (the retry runs in a new process). Each rerun must fetch only the pages after the
last committed one, and the delivered CSV must hold every member exactly once.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lytics_provider.operators.lytics import LyticsAudienceScanOperator
from lytics_provider.pipeline.http import ServiceError
from lytics_provider.pipeline.snapshot import Snapshot
from lytics_provider.transfers.lytics_to_sftp import MappSftpExportOperator, mapp_scan_fields
from lytics_sandbox.lytics import LyticsSandbox
from lytics_sandbox.synth import SyntheticAccount
from tests.helpers import lytics_conn, make_context, run_task

REPO = Path(__file__).resolve().parents[2]
SCAN = r"/api/segment/[^/]+/scan"
AUDIENCE_SIZE = 3_000
PAGE = 100
PAGES = AUDIENCE_SIZE // PAGE
MAPPING = {"email": "user.Email", "first_name": "user.FirstName", "city": "user.City"}
RUN_ID = "scheduled__2026-11-23T00:00:00+00:00"
CSV_NAME = "export-lytics-High_Value-20261123000000.csv"

# The task body a worker runs: one task of the Mapp job, XComs kept as JSON files between runs.
TASK_SCRIPT = """
import json, sys
from pathlib import Path
from tests.helpers import make_context
from tests.integration.test_kill_resume import mapp_task

step, xcom_dir, run_id = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
xcoms = {path.stem: json.loads(path.read_text()) for path in xcom_dir.glob("*.json")}
op = mapp_task(step)
result = op.execute(make_context(run_id=run_id, xcoms=xcoms))
(xcom_dir / f"{op.task_id}.json").write_text(json.dumps(result))
"""


def mapp_task(step: str) -> Any:
    """The ``scan`` or ``deliver`` task of the Mapp job under test."""
    if step == "scan":
        fields = mapp_scan_fields(MAPPING, "email")
        return LyticsAudienceScanOperator(task_id="scan", audience="high_value", job_id="mapp", fields=fields)
    return MappSftpExportOperator(
        task_id="deliver", job_id="mapp", sftp_conn_id="mapp_sftp", folder="/upload", field_mapping=MAPPING
    )


def run_in_process(step: str, xcom_dir: Path) -> dict[str, Any]:
    """Run a task here (another worker taking the retry) and keep its XCom beside the others."""
    xcoms = {path.stem: json.loads(path.read_text()) for path in xcom_dir.glob("*.json")}
    result = run_task(mapp_task(step), make_context(run_id=RUN_ID, xcoms=xcoms))
    (xcom_dir / f"{step}.json").write_text(json.dumps(result))
    return result


@pytest.fixture
def sandbox() -> Iterator[LyticsSandbox]:
    server = LyticsSandbox(SyntheticAccount(audiences={"high_value": AUDIENCE_SIZE, "all_users": 5_000}))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def worker_env(sandbox: LyticsSandbox, sftp_server: Any, tmp_path: Path, monkeypatch) -> dict[str, str]:
    (sftp_server.root / "upload").mkdir()
    env = {
        **os.environ,
        "AIRFLOW_CONN_LYTICS_DEFAULT": lytics_conn(sandbox.base_url),
        "AIRFLOW_CONN_MAPP_SFTP": sftp_server.conn_json,
        "LYTICS_DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "PYTHONWARNINGS": "ignore",
    }
    for key in ("AIRFLOW_CONN_LYTICS_DEFAULT", "AIRFLOW_CONN_MAPP_SFTP", "LYTICS_DATA_DIR"):
        monkeypatch.setenv(key, env[key])
    return env


def snapshot_path(data_dir: str) -> Path:
    return Path(data_dir) / "mapp" / "runs" / "scheduled__2026-11-23T00_00_00_00_00" / "snapshot.db"


def scan_in_progress(data_dir: str) -> Path:
    """The snapshot the scan commits its pages to: the audience's shared scan (``pipeline.shared_scan``)."""
    found = sorted(Path(data_dir).glob("shared_scans/*/*/snapshot.db"))
    return found[0] if found else Path(data_dir) / "shared_scans" / "not-started"


def committed_pages(path: Path) -> int:
    """Pages the snapshot has committed (0 while the file does not exist yet)."""
    if not path.exists():
        return 0
    db = sqlite3.connect(path, timeout=5)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'pages'").fetchone()
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()
    return int(row[0]) if row else 0


def start_task(step: str, env: dict[str, str], xcom_dir: Path) -> subprocess.Popen[bytes]:
    xcom_dir.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-c", TASK_SCRIPT, step, str(xcom_dir), RUN_ID],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool], what: str, limit: float = 90) -> None:
    """SIGKILL ``proc`` as soon as ``ready()``; fail if it exits or the limit passes first."""
    deadline = time.monotonic() + limit
    while not ready():
        if proc.poll() is not None:
            err = proc.stderr.read().decode()[-3000:] if proc.stderr else ""
            pytest.fail(f"the task exited ({proc.returncode}) before {what}:\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def expected_uids(sandbox: LyticsSandbox) -> list[str]:
    return [m["_uid"] for m in sandbox.expected_members("high_value")]


def snapshot_uids(path: Path) -> list[str]:
    with Snapshot(path) as snap:
        return [r["_uid"] for r in snap.iter_records()]


def settle(sandbox: LyticsSandbox) -> None:
    """Wait until no request of a killed worker is still arriving, then zero the counters."""
    before = -1
    while sandbox.total_calls != before:
        before = sandbox.total_calls
        time.sleep(0.3)
    sandbox.reset_counters()


def test_killed_worker_resumes_the_scan_and_the_delivery_exactly_once(
    sandbox: LyticsSandbox, sftp_server: Any, worker_env: dict[str, str], tmp_path: Path, monkeypatch
) -> None:
    snapshot = snapshot_path(worker_env["LYTICS_DATA_DIR"])
    xcoms = tmp_path / "xcoms"

    # 1. Scan, slowed to ~20 pages/s, SIGKILLed once at least 8 pages are committed.
    sandbox.page_delay = 0.05
    data_dir = worker_env["LYTICS_DATA_DIR"]
    proc = start_task("scan", worker_env, xcoms)
    kill_when(proc, lambda: committed_pages(scan_in_progress(data_dir)) >= 8, "8 committed scan pages")
    settle(sandbox)
    done_before = committed_pages(scan_in_progress(data_dir))
    assert 8 <= done_before < PAGES, "the kill must land mid-scan"
    with Snapshot(scan_in_progress(data_dir)) as partial:
        assert partial.checkpoint.members == done_before * PAGE
        assert not partial.checkpoint.complete

    # 2. The retry (on another worker) fetches only the remaining pages.
    sandbox.page_delay = 0.0
    assert run_in_process("scan", xcoms)["members"] == AUDIENCE_SIZE
    assert sandbox.calls_to("segment_scan") == PAGES - done_before
    assert snapshot_uids(snapshot) == expected_uids(sandbox)

    # 3. Deliver, with the SFTP server slowed to one 32 KiB write per 0.1 s, SIGKILLed mid-upload.
    from lytics_sandbox import sftp as sftp_module

    original_write = sftp_module._SandboxSFTP.write

    def slow_write(self: Any, file_obj: Any, offset: int, data: bytes) -> Any:
        time.sleep(0.1)
        return original_write(self, file_obj, offset, data)

    monkeypatch.setattr(sftp_module._SandboxSFTP, "write", slow_write, raising=False)
    upload = sftp_server.root / "upload"
    part = upload / f".{CSV_NAME}.part"
    proc = start_task("deliver", worker_env, xcoms)
    kill_when(proc, lambda: part.exists() and part.stat().st_size > 0, "the upload to start", limit=120)
    assert not (upload / CSV_NAME).exists(), "a killed upload must never leave a final file behind"

    # 4. The retry uploads the whole file under its final name; every member is in it once.
    monkeypatch.setattr(sftp_module._SandboxSFTP, "write", original_write, raising=False)
    report = run_in_process("deliver", xcoms)
    rows = list(csv.reader(io.StringIO((upload / CSV_NAME).read_text(encoding="utf-8"), newline="")))
    assert rows[0] == ["user.Email", "user.FirstName", "user.City", "user.CustomAttribute.SegmentMembership"]
    emails = [row[0] for row in rows[1:]]
    assert emails == [m["email"] for m in sandbox.expected_members("high_value")]
    assert len(set(emails)) == AUDIENCE_SIZE
    assert not part.exists()
    assert (report["rows"], report["rejected"]) == (AUDIENCE_SIZE, 0)


def test_dropped_connections_fail_the_attempt_and_the_retry_resumes(
    sandbox: LyticsSandbox, worker_env: dict[str, str], monkeypatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(sandbox.base_url, max_attempts=3))
    monkeypatch.setattr("lytics_provider.pipeline.http.RetryPolicy.backoff", lambda self, attempt: 0.01)
    # Page 12's request and both of its retries are cut off mid-body: the attempt gives up.
    sandbox.faults.add("drop", path_regex=SCAN, after=11, times=3)

    with pytest.raises(ServiceError, match="connection failed after 3 attempts"):
        run_task(mapp_task("scan"), make_context(run_id=RUN_ID))
    assert sandbox.faults.injected["drop"] == 3
    snapshot = snapshot_path(worker_env["LYTICS_DATA_DIR"])
    assert committed_pages(scan_in_progress(worker_env["LYTICS_DATA_DIR"])) == 11

    sandbox.reset_counters()
    result = run_task(mapp_task("scan"), make_context(run_id=RUN_ID))
    assert sandbox.calls_to("segment_scan") == PAGES - 11
    assert result["members"] == AUDIENCE_SIZE
    assert snapshot_uids(snapshot) == expected_uids(sandbox)
