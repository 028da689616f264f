"""The scan task: every member exactly once through 429s, 5xx, dropped connections and a task retry."""

from __future__ import annotations

import pytest

from lytics_provider.operators.lytics import LyticsAudienceScanOperator, LyticsCommitRunOperator
from lytics_provider.pipeline import http
from lytics_provider.pipeline.http import ServiceError
from lytics_provider.pipeline.snapshot import Snapshot
from lytics_provider.pipeline.workarea import JobState
from lytics_sandbox.faults import FaultRule
from tests.helpers import lytics_conn, make_context, run_task

SCAN = r"/api/segment/[^/]+/scan"


@pytest.fixture(autouse=True)
def _env(lytics_sandbox, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics_sandbox.base_url))
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(http.RetryPolicy, "backoff", lambda self, attempt: 0.01)


def _scan_op(**kwargs) -> LyticsAudienceScanOperator:
    return LyticsAudienceScanOperator(
        task_id="scan", audience="all_users", job_id="job", page_size=50, **kwargs
    )


def _uids(path: str) -> list[str]:
    with Snapshot(path) as snap:
        return [r["_uid"] for r in snap.iter_records()]


def test_scan_delivers_every_member_once_through_429_5xx_and_drops(lytics_sandbox) -> None:
    lytics_sandbox.faults.add(FaultRule("429", path_regex=SCAN, after=3, times=2))
    lytics_sandbox.faults.add(FaultRule("429", path_regex=SCAN, after=10, times=1, retry_after=0))
    lytics_sandbox.faults.add(FaultRule("5xx", path_regex=SCAN, after=15, times=2, status=503))
    lytics_sandbox.faults.add(FaultRule("drop", path_regex=SCAN, after=20, times=2))
    result = run_task(_scan_op(), make_context())
    expected = [m["_uid"] for m in lytics_sandbox.expected_members("all_users")]
    assert _uids(result["snapshot"]) == expected
    assert result["members"] == len(expected)
    assert lytics_sandbox.faults.injected["429"] == 3
    assert lytics_sandbox.faults.injected["drop"] == 2
    assert result["api_calls"] > len(expected) // 50


def test_task_retry_resumes_from_the_checkpoint(lytics_sandbox, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics_sandbox.base_url, max_attempts=2))
    lytics_sandbox.faults.add(FaultRule("5xx", path_regex=SCAN, after=12, times=2, status=502))
    with pytest.raises(ServiceError):
        run_task(_scan_op(), make_context())
    calls_before = lytics_sandbox.calls.get("segment_scan", 0)
    result = run_task(_scan_op(), make_context())
    resumed_calls = lytics_sandbox.calls.get("segment_scan", 0) - calls_before
    expected = [m["_uid"] for m in lytics_sandbox.expected_members("all_users")]
    assert _uids(result["snapshot"]) == expected
    pages = -(-len(expected) // 50)
    assert resumed_calls == pages - 12
    again = run_task(_scan_op(), make_context())
    assert again["members"] == len(expected)
    assert lytics_sandbox.calls.get("segment_scan", 0) - calls_before == resumed_calls


def test_expired_cursor_restarts_the_scan_cleanly(lytics_sandbox, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics_sandbox.base_url, max_attempts=1))
    lytics_sandbox.faults.add(FaultRule("5xx", path_regex=SCAN, after=5, times=1))
    with pytest.raises(ServiceError):
        run_task(_scan_op(), make_context())
    lytics_sandbox.faults.add(FaultRule("expired_cursor", path_regex=SCAN, times=1))
    result = run_task(_scan_op(), make_context())
    assert _uids(result["snapshot"]) == [m["_uid"] for m in lytics_sandbox.expected_members("all_users")]


def test_user_limit_and_fields(lytics_sandbox) -> None:
    result = run_task(_scan_op(user_limit=120, fields=["email"]), make_context())
    with Snapshot(result["snapshot"]) as snap:
        records = list(snap.iter_records())
    assert len(records) == 120
    assert all(set(r) <= {"_uid", "email"} for r in records)
    assert result["audience"]["slug"] == "all_users"


def test_commit_reports_the_diff_and_only_then_moves_the_baseline(lytics_sandbox) -> None:
    first_ctx = make_context(run_id="run1")
    scan = run_task(_scan_op(), first_ctx)
    first_ctx["ti"].xcoms["deliver"] = {"delivered": scan["members"]}
    dry = LyticsCommitRunOperator(task_id="report", job_id="job").execute(
        make_context(run_id="run1", params={"dry_run": True}, xcoms=first_ctx["ti"].xcoms)
    )
    assert dry["dry_run"] and JobState("job").get("last_snapshot") is None
    report = run_task(LyticsCommitRunOperator(task_id="report", job_id="job"), first_ctx)
    assert report["enters"] == scan["members"] and report["exits"] == 0
    assert JobState("job").get("last_snapshot") == scan["snapshot"]

    lytics_sandbox.set_churn("all_users", exits=7, enters=11, changes=5)
    lytics_sandbox.set_version("all_users", 1)
    second_ctx = make_context(run_id="run2")
    run_task(_scan_op(), second_ctx)
    report = run_task(LyticsCommitRunOperator(task_id="report", job_id="job"), second_ctx)
    assert (report["enters"], report["exits"], report["changes"]) == (11, 7, 5)
    full = LyticsCommitRunOperator(task_id="report", job_id="job").execute(
        make_context(run_id="run2", params={"full_refresh": True}, xcoms=second_ctx["ti"].xcoms)
    )
    assert full["enters"] == report["members"] and full["exits"] == 0
