# ruff: noqa: F811 - pytest fixtures imported from conftest_warehouse
"""Retention of run dirs, ``lytics-airflow gc`` and the committed state in ``LYTICS_STATE_URL``.

Drives the Dotdigital Export Contacts job's tasks (scan -> deliver -> report) against the Lytics
and Dotdigital sandboxes, as tests/integration/test_dotdigital_export.py does; the state store is
a moto S3 server on loopback or a ``file://`` directory.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

import pytest

from lytics_provider.jobs import cli
from lytics_provider.operators.dotdigital import DotdigitalExportContactsOperator
from lytics_provider.operators.lytics import LyticsAudienceScanOperator, LyticsCommitRunOperator
from lytics_provider.pipeline import retention, state_store
from lytics_provider.pipeline.workarea import JobState, job_dir
from lytics_sandbox.lytics import LyticsSandbox
from lytics_sandbox.synth import SyntheticAccount
from tests.helpers import make_context, run_task
from tests.integration.conftest_warehouse import moto_endpoint, s3_client  # noqa: F401 - fixture

AUDIENCE = "newsletter"
JOB = "dd_retention"
IMPORT_ROUTE = "POST /v2/address-books/{book}/contacts/import"
DELETE_ROUTE = "POST /v2/address-books/{book}/contacts/delete"


@pytest.fixture
def lytics_account() -> SyntheticAccount:
    return SyntheticAccount(audiences={"all_users": 300, AUDIENCE: 120}, invalid_email_rate=0.05)


def deliver_op() -> DotdigitalExportContactsOperator:
    return DotdigitalExportContactsOperator(task_id="deliver", job_id=JOB, create_address_book=True)


class Run:
    """One DAG run of the job, task by task (a run can stop after any task, like a failed run)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.context = make_context(run_id=run_id, params={"dry_run": False, "full_refresh": False})

    def scan(self) -> dict:
        op = LyticsAudienceScanOperator(task_id="scan", audience=AUDIENCE, job_id=JOB, page_size=50)
        return run_task(op, self.context)

    def deliver(self) -> dict:
        return run_task(deliver_op(), self.context)

    def commit(self) -> dict:
        return run_task(LyticsCommitRunOperator(task_id="report", job_id=JOB), self.context)

    def all(self) -> tuple[dict, dict]:
        self.scan()
        return self.deliver(), self.commit()


def run_dirs() -> list[str]:
    runs = job_dir(JOB) / "runs"
    return sorted(p.name for p in runs.iterdir()) if runs.is_dir() else []


def files_in(name: str) -> list[str]:
    folder = job_dir(JOB) / "runs" / name
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def valid_emails(lytics: LyticsSandbox) -> set[str]:
    return {m["email"] for m in lytics.expected_members(AUDIENCE) if "@" in m["email"]}


def uids(lytics: LyticsSandbox) -> set[str]:
    return {m["_uid"] for m in lytics.expected_members(AUDIENCE)}


def tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


# -- retention -------------------------------------------------------------------------------------
def test_five_runs_leave_the_baseline_and_the_run_in_flight(lytics, dd) -> None:
    for number in range(1, 5):
        lytics.set_version(AUDIENCE, number - 1)
        Run(f"r{number}").all()
        assert run_dirs() == [f"r{number}"]
    # run 5 overlaps a manual run that starts after it and is still in flight when run 5 commits
    lytics.set_version(AUDIENCE, 4)
    fifth, manual = Run("r5"), Run("manual_m")
    fifth.scan()
    manual.scan()
    fifth.deliver()
    report = fifth.commit()
    assert run_dirs() == ["manual_m", "r5"]
    # the baseline keeps its snapshot and rejects, not the plan database or the staged CSV files
    kept = files_in("r5")
    assert "snapshot.db" in kept and "rejects.csv" in kept
    assert not [name for name in kept if name.startswith("dotdigital_") or name.endswith(".csv.part")]
    kept_names = ("rejects.csv", ".run_started", ".run_committed")
    assert all(name in kept_names or name.startswith("snapshot.db") for name in kept)  # with -wal, -shm
    assert report["snapshot_bytes_per_member"] == round(
        (job_dir(JOB) / "runs" / "r5" / "snapshot.db").stat().st_size / report["members"], 1
    )
    assert JobState(JOB).get("last_run_id") == "r5"
    # the manual run still works on its own snapshot and then becomes the baseline
    book = dd.book_by_name("Lytics newsletter")
    assert book is not None
    dd.reset_counters()
    delivered = manual.deliver()
    manual.commit()
    assert delivered["planned"]["adds"] == 0 and dd.calls_to(IMPORT_ROUTE) == 0
    assert set(dd.members(book.id)) == valid_emails(lytics)
    assert run_dirs() == ["manual_m"]


def test_a_failed_run_older_than_the_baseline_is_deleted(lytics, dd) -> None:
    Run("r1").all()
    failed = Run("r2_failed")
    failed.scan()  # the run stopped after its scan (deliver failed, nothing committed)
    lytics.set_version(AUDIENCE, 1)
    Run("r3").all()
    assert run_dirs() == ["r3"]


# -- lytics-airflow gc -----------------------------------------------------------------------------
def test_gc_frees_space_and_dry_run_deletes_nothing(lytics, dd, monkeypatch, capsys) -> None:
    with monkeypatch.context() as unpruned:  # a data dir filled before retention existed
        unpruned.setattr("lytics_provider.operators.lytics.prune_job_runs", lambda job_id, run_id: None)
        for number in range(3):
            lytics.set_version(AUDIENCE, number)
            Run(f"r{number + 1}").all()
    Run("r4_failed").scan()
    root = Path(os.environ["LYTICS_DATA_DIR"])
    old = time.time() - 2 * 86400
    stale_scan = root / "shared_scans" / "seg1"
    stale_scan.mkdir(parents=True)
    (stale_scan / "snapshot.db").write_bytes(b"x" * 4096)
    os.utime(stale_scan / "snapshot.db", (old, old))
    os.utime(stale_scan, (old, old))
    fresh_scan = root / "shared_scans" / "seg2"
    fresh_scan.mkdir()
    (fresh_scan / "snapshot.db").write_bytes(b"y" * 100)
    part = root / JOB / "runs" / "r3" / "upload.csv.part"
    part.write_bytes(b"z" * 1000)
    os.utime(part, (old, old))
    before = {str(p): p.stat().st_size for p in root.rglob("*")}
    size_before = tree_size(root)

    assert cli.main(["gc", "--data-dir", str(root), "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert {str(p): p.stat().st_size for p in root.rglob("*")} == before
    would_free = int(dry.strip().splitlines()[-1].split("would free ")[1].split(" bytes")[0])
    assert would_free > 0

    assert cli.main(["gc", "--data-dir", str(root)]) == 0
    out = capsys.readouterr().out
    freed = int(out.strip().splitlines()[-1].split("freed ")[1].split(" bytes")[0])
    assert freed == would_free == size_before - tree_size(root)
    assert run_dirs() == ["r3", "r4_failed"]  # r4 started after the baseline: it may be retried
    assert "snapshot.db" in files_in("r3") and not part.exists()
    assert not stale_scan.exists() and fresh_scan.exists()
    snapshot_size = (job_dir(JOB) / "runs" / "r3" / "snapshot.db").stat().st_size
    members = JobState(JOB).get("last_report")["members"]
    assert f"baseline r3: {snapshot_size} bytes, {round(snapshot_size / members, 1)} bytes/member" in out
    # the next run still diffs against the kept baseline and sends only the churn
    dd.reset_counters()
    lytics.set_version(AUDIENCE, 3)
    delivered, _ = Run("r5").all()
    assert delivered["planned"]["enters"] > 0 and dd.calls_to(IMPORT_ROUTE) == 1
    assert delivered["planned"]["enters"] < len(valid_emails(lytics))


def test_gc_on_a_missing_data_dir_says_so(tmp_path, capsys) -> None:
    assert cli.main(["gc", "--data-dir", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().err


# -- LYTICS_STATE_URL --------------------------------------------------------------------------------
@pytest.fixture
def s3_state(moto_endpoint, monkeypatch) -> str:
    """A bucket on the moto server and a ``lytics_state`` AWS connection whose extra has endpoint_url."""
    bucket = f"lytics-state-{os.urandom(4).hex()}"
    s3_client(moto_endpoint).create_bucket(Bucket=bucket)
    monkeypatch.setenv(
        "AIRFLOW_CONN_LYTICS_STATE",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": moto_endpoint, "region_name": "us-east-1"},
            }
        ),
    )
    return bucket


def _objects(endpoint: str, bucket: str) -> dict[str, bytes]:
    client = s3_client(endpoint)
    listing = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing}


def _on_worker(monkeypatch, tmp_path: Path, name: str) -> Path:
    data = tmp_path / name
    monkeypatch.setenv("LYTICS_DATA_DIR", str(data))
    return data


def test_a_run_on_a_new_worker_pulls_the_baseline_from_s3_and_sends_only_the_churn(
    lytics, dd, s3_state, moto_endpoint, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("LYTICS_STATE_URL", f"s3://lytics_state@{s3_state}/lytics/state")
    worker_a = _on_worker(monkeypatch, tmp_path, "worker_a")
    Run("r1").all()
    book = dd.book_by_name("Lytics newsletter")
    assert book is not None
    before, before_uids = valid_emails(lytics), uids(lytics)
    objects = _objects(moto_endpoint, s3_state)
    prefix = f"lytics/state/{JOB}"
    assert sorted(objects) == [f"{prefix}/baselines/r1.snapshot.db.gz", f"{prefix}/state.json"]
    local = worker_a / JOB / "runs" / "r1" / "snapshot.db"
    assert gzip.decompress(objects[f"{prefix}/baselines/r1.snapshot.db.gz"]) == local.read_bytes()

    lytics.set_version(AUDIENCE, 1)
    after, after_uids = valid_emails(lytics), uids(lytics)
    worker_b = _on_worker(monkeypatch, tmp_path, "worker_b")
    assert not worker_b.exists()
    dd.reset_counters()
    delivered, report = Run("r2").all()
    # only the churn: the members who entered or changed are imported, the ones who left removed
    assert report["enters"] == delivered["planned"]["enters"] == len(after_uids - before_uids) > 0
    assert report["exits"] == delivered["planned"]["exits"] == len(before_uids - after_uids) > 0
    assert delivered["planned"]["adds"] <= report["enters"] + report["changes"] < len(after)
    assert delivered["imports"]["1001:1"]["rows"] == delivered["planned"]["adds"]
    assert delivered["outcomes"]["remove:Removed"] == len(before - after)
    assert dd.calls_to(IMPORT_ROUTE) == 1 and dd.calls_to(DELETE_ROUTE) == 1
    assert set(dd.members(book.id)) == after
    state = json.loads(_objects(moto_endpoint, s3_state)[f"{prefix}/state.json"])
    assert state["last_run_id"] == "r2" and state["baseline"]["object"] == "r2.snapshot.db.gz"
    assert sorted(_objects(moto_endpoint, s3_state)) == [
        f"{prefix}/baselines/r2.snapshot.db.gz",
        f"{prefix}/state.json",
    ]
    assert sorted(p.name for p in (worker_b / JOB / "runs").iterdir()) == ["r2"]  # pulled r1 pruned


def test_a_crash_between_upload_and_state_keeps_the_old_baseline_and_a_retry_commits(
    lytics, dd, s3_state, moto_endpoint, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("LYTICS_STATE_URL", f"s3://{s3_state}/state")
    monkeypatch.setenv("LYTICS_STATE_CONN_ID", "lytics_state")
    _on_worker(monkeypatch, tmp_path, "worker_a")
    Run("r1").all()
    lytics.set_version(AUDIENCE, 1)
    second = Run("r2")
    second.scan()
    second.deliver()

    def crash(job_id: str, text: str) -> None:
        raise ConnectionError("worker lost")

    with monkeypatch.context() as broken:
        broken.setattr(state_store, "write_state", crash)
        with pytest.raises(ConnectionError):
            second.commit()
    objects = _objects(moto_endpoint, s3_state)
    state = json.loads(objects[f"state/{JOB}/state.json"])
    assert state["last_run_id"] == "r1" and f"state/{JOB}/baselines/r1.snapshot.db.gz" in objects
    # a new worker still finds the committed baseline the state names
    _on_worker(monkeypatch, tmp_path, "worker_b")
    assert state_store.baseline_snapshot(JOB) == tmp_path / "worker_b" / JOB / "runs" / "r1" / "snapshot.db"
    _on_worker(monkeypatch, tmp_path, "worker_a")
    second.commit()
    second.commit()  # retried once more after success: nothing breaks, one baseline object
    objects = _objects(moto_endpoint, s3_state)
    assert sorted(objects) == [f"state/{JOB}/baselines/r2.snapshot.db.gz", f"state/{JOB}/state.json"]
    assert json.loads(objects[f"state/{JOB}/state.json"])["last_run_id"] == "r2"


def test_file_state_url_carries_baseline_and_import_watermarks_to_a_new_worker(
    lytics, dd, monkeypatch, tmp_path
) -> None:
    store = tmp_path / "shared_state"
    monkeypatch.setenv("LYTICS_STATE_URL", store.as_uri())
    _on_worker(monkeypatch, tmp_path, "worker_a")
    Run("r1").all()
    JobState("an_import").update(watermark="2026-11-20T00:00:00")
    before, before_uids = valid_emails(lytics), uids(lytics)
    lytics.set_version(AUDIENCE, 1)
    after, after_uids = valid_emails(lytics), uids(lytics)
    _on_worker(monkeypatch, tmp_path, "worker_b")
    assert JobState("an_import").get("watermark") == "2026-11-20T00:00:00"
    dd.reset_counters()
    delivered, report = Run("r2").all()
    assert report["enters"] == len(after_uids - before_uids) and report["exits"] == len(
        before_uids - after_uids
    )
    assert delivered["planned"]["adds"] <= report["enters"] + report["changes"] < len(after)
    assert set(dd.members(dd.book_by_name("Lytics newsletter").id)) == after
    assert delivered["outcomes"]["remove:Removed"] == len(before - after)
    assert sorted(p.name for p in (store / JOB / "baselines").iterdir()) == ["r2.snapshot.db.gz"]
    assert json.loads((store / JOB / "state.json").read_text())["last_run_id"] == "r2"
    assert not [p for p in store.rglob("*") if p.name.endswith(".tmp")]


def test_state_url_without_a_scheme_is_a_clear_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("LYTICS_STATE_URL", "my-bucket/lytics")
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="LYTICS_STATE_URL='my-bucket/lytics' has no scheme"):
        JobState("job").load()


def test_prune_runs_leaves_a_job_without_any_commit_alone(tmp_path) -> None:
    runs = tmp_path / "runs"
    for name in ("a", "b"):
        (runs / name).mkdir(parents=True)
        (runs / name / "staged.csv").write_text("x")
    result = retention.prune_runs(runs, None)
    assert result.freed_bytes == 0 and sorted(result.kept_runs) == ["a", "b"]
    assert sorted(p.name for p in runs.iterdir()) == ["a", "b"]


def test_a_truncated_baseline_object_is_a_clear_error_and_leaves_no_file(monkeypatch, tmp_path) -> None:
    store = tmp_path / "store"
    monkeypatch.setenv("LYTICS_STATE_URL", store.as_uri())
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    snapshot = tmp_path / "snapshot.db"
    snapshot.write_bytes(os.urandom(1_000_000) + b"members" * 1_300_000)  # two gzip members
    baseline = state_store.upload_baseline("job", "run 1", snapshot)
    stored = store / "job" / "baselines" / "run_1.snapshot.db.gz"
    assert baseline["object"] == stored.name and baseline["raw_bytes"] == snapshot.stat().st_size
    dest = tmp_path / "worker_b" / "snapshot.db"
    assert state_store.download_baseline("job", baseline, dest).read_bytes() == snapshot.read_bytes()
    stored.write_bytes(stored.read_bytes()[: baseline["bytes"] // 2])
    dest.unlink()
    with pytest.raises(OSError, match=r"truncated or corrupt .*; run with full_refresh"):
        state_store.download_baseline("job", baseline, dest)
    assert list(dest.parent.iterdir()) == []
