"""The scan task when the Lytics API misbehaves: early ends, error envelopes and bodies cut short
are retried until every member is stored exactly once (or the task fails with nothing to
commit), and permanent errors fail the task at once, naming the fix. Both fetch paths: in the
task's process and in the scan fetcher child."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.lytics import UnknownAudienceError
from lytics_provider.hooks.task_errors import AuthTaskError
from lytics_provider.operators.lytics import LyticsAudienceScanOperator
from lytics_provider.pipeline import http
from lytics_provider.pipeline.http import ServiceError
from lytics_provider.pipeline.scan_completeness import IncompleteScanError
from lytics_provider.pipeline.snapshot import Snapshot
from lytics_provider.pipeline.workarea import JobState, data_root
from lytics_sandbox.faults import FaultRule
from tests.helpers import lytics_conn, make_context, run_task

SCAN = r"/api/segment/[^/]+/scan"
PAGE = 50
FETCH_PATHS = pytest.mark.parametrize("in_subprocess", [False, True], ids=["in_process", "child"])


@pytest.fixture(autouse=True)
def _env(lytics_sandbox, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics_sandbox.base_url))
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(http.RetryPolicy, "backoff", lambda self, attempt: 0.01)


def _scan_op(in_subprocess: bool, audience: str = "all_users") -> LyticsAudienceScanOperator:
    return LyticsAudienceScanOperator(
        task_id="scan", audience=audience, job_id="job", page_size=PAGE, fetch_in_subprocess=in_subprocess
    )


def _expected(sandbox) -> list[str]:
    return [m["_uid"] for m in sandbox.expected_members("all_users")]


def _stored(path) -> tuple[list[str], bool]:
    with Snapshot(path) as snap:
        return [r["_uid"] for r in snap.iter_records()], snap.checkpoint.complete


@FETCH_PATHS
def test_an_early_end_is_requested_again_and_every_member_stored_once(lytics_sandbox, in_subprocess) -> None:
    lytics_sandbox.faults.add(FaultRule("early_end", path_regex=SCAN, after=5, times=1))
    result = run_task(_scan_op(in_subprocess), make_context())
    uids, complete = _stored(result["snapshot"])
    assert lytics_sandbox.faults.injected["early_end"] == 1
    assert uids == _expected(lytics_sandbox)
    assert complete and result["members"] == len(uids)
    pages = -(-len(uids) // PAGE)
    assert lytics_sandbox.calls_to("segment_scan") == pages + 1


@FETCH_PATHS
def test_an_early_end_that_persists_fails_and_leaves_nothing_to_commit(lytics_sandbox, in_subprocess) -> None:
    rule = lytics_sandbox.faults.add(FaultRule("early_end", path_regex=SCAN, after=5, times=None))
    context = make_context()
    with pytest.raises(IncompleteScanError) as raised:
        run_task(_scan_op(in_subprocess), context)
    message = str(raised.value)
    assert "'all_users'" in message and "reported 2000" in message
    assert not isinstance(raised.value, AirflowFailException)  # transient: Airflow may retry the task
    assert rule.fired == 2 * 4  # the page and three requests of it again, in each of two scans
    # The partial scan stays resumable: in the run's folder, or in the shared-scan area when the
    # scan is shared with other jobs (the default); none of it is marked complete.
    partial = [_stored(path) for path in data_root().rglob("snapshot.db")]
    assert partial and all(not complete and 0 < len(uids) < 2000 for uids, complete in partial)
    assert "scan" not in context["ti"].xcoms  # deliver and commit have no scan to work on
    assert JobState("job").get("last_snapshot") is None

    lytics_sandbox.faults.clear()
    retried = run_task(_scan_op(in_subprocess), make_context())
    uids, complete = _stored(retried["snapshot"])
    assert complete and uids == _expected(lytics_sandbox)


@FETCH_PATHS
def test_error_envelopes_and_bodies_cut_short_are_retried_in_the_call(lytics_sandbox, in_subprocess) -> None:
    lytics_sandbox.faults.add(FaultRule("error_envelope", path_regex=r"^/v2/segment/", times=1))
    lytics_sandbox.faults.add(FaultRule("error_envelope", path_regex=SCAN, after=3, times=2, status=503))
    lytics_sandbox.faults.add(FaultRule("truncated", path_regex=SCAN, after=10, times=2))
    result = run_task(_scan_op(in_subprocess), make_context())
    uids, complete = _stored(result["snapshot"])
    assert lytics_sandbox.faults.injected["error_envelope"] == 3
    assert lytics_sandbox.faults.injected["truncated"] == 2
    assert complete and uids == _expected(lytics_sandbox)
    pages = -(-len(uids) // PAGE)
    assert lytics_sandbox.calls_to("segment_scan") == pages + 4
    assert result["api_calls"] == pages + 4 + 2


@FETCH_PATHS
def test_a_persistent_error_envelope_names_what_the_api_sent(
    lytics_sandbox, monkeypatch, in_subprocess
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics_sandbox.base_url, max_attempts=3))
    lytics_sandbox.faults.add(FaultRule("error_envelope", path_regex=SCAN, after=4, times=None, status=503))
    context = make_context()
    with pytest.raises(ServiceError) as raised:
        run_task(_scan_op(in_subprocess), context)
    message = str(raised.value)
    assert "status 503" in message and "sandbox injected error" in message and "after 3 attempts" in message
    assert "_uid" not in message
    assert not isinstance(raised.value, AirflowFailException)
    partial = [_stored(path) for path in data_root().rglob("snapshot.db")]
    assert partial and all(not complete and len(uids) == 4 * PAGE for uids, complete in partial)


def test_an_unknown_audience_fails_at_once_with_the_closest_slugs(lytics_sandbox) -> None:
    with pytest.raises(UnknownAudienceError) as raised:
        run_task(_scan_op(True, audience="newsleter"), make_context())
    assert isinstance(raised.value, AirflowFailException)
    message = str(raised.value)
    assert "'newsleter'" in message and "Did you mean 'newsletter'" in message
    assert "connection 'lytics_default'" in message
    assert lytics_sandbox.calls_to("v2_segment_get") == 1
    assert lytics_sandbox.calls_to("segment_scan") == 0


def test_a_wrong_token_fails_at_once_naming_the_connection(lytics_sandbox, monkeypatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics_sandbox.base_url, token="wrong-token")
    )
    with pytest.raises(AuthTaskError) as raised:
        run_task(_scan_op(True), make_context())
    assert isinstance(raised.value, AirflowFailException) and raised.value.status == 401
    message = str(raised.value)
    assert "connection 'lytics_default'" in message and "Password field" in message
    assert "wrong-token" not in message
    assert lytics_sandbox.calls_to("v2_segment_get") == 1
