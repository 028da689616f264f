"""Segment: the hook and the Tracking API stand-in, Identify and Track runs, retries, rejects, the config."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import requests
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.segment import (
    MAX_MESSAGE_BYTES,
    BatchRefused,
    SegmentBatchHook,
    SegmentConfigError,
    SegmentDestination,
)
from lytics_provider.integrations.catalog import read_integration, todo_entries
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.pipeline import http
from lytics_provider.sync.changes import plan_changes
from lytics_provider.sync.events import event_id
from lytics_provider.sync.plan import SyncPlan
from lytics_sandbox.segment import MAX_BATCH_BYTES, SegmentSandbox
from tests.conformance.runner import JobRun
from tests.helpers import lytics_conn, serve_connection
from tests.integration.test_sync_engine import member, snapshot

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "include" / "jobs" / "segment_export.yaml"
DECLARATION = REPO / "lytics_provider" / "integrations" / "segment.yaml"
KEY = "wkSegmentTestWriteKey0123456789ab"
AUDIENCE = "vip_buyers"


@pytest.fixture(scope="module")
def segment_stand() -> Iterator[SegmentSandbox]:
    with SegmentSandbox(write_keys=(KEY,)) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def lytics_stand() -> Iterator[Any]:
    from lytics_sandbox.lytics import LyticsSandbox
    from lytics_sandbox.synth import SyntheticAccount

    with LyticsSandbox(SyntheticAccount(seed=5, audiences={"all": 200, AUDIENCE: 40})) as sandbox:
        yield sandbox


@pytest.fixture
def stand(
    segment_stand: SegmentSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[SegmentSandbox]:
    segment_stand.sources[KEY].events.clear()
    segment_stand.dropped.clear()
    segment_stand.duplicates = 0
    serve_connection(monkeypatch, tmp_path, "segment_default", segment_stand.connection(KEY))
    yield segment_stand
    segment_stand.faults.clear()


@pytest.fixture
def lytics(lytics_stand: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    from lytics_sandbox.synth import SyntheticAccount

    lytics_stand.account = SyntheticAccount(seed=5, audiences={"all": 200, AUDIENCE: 40})
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics_stand.base_url))
    return lytics_stand


# -- the declaration and the example ----------------------------------------------------------------


def test_registration_is_complete() -> None:
    assert todo_entries(read_integration(DECLARATION)) == []


def test_example_config_loads_and_builds_scan_deliver_report() -> None:
    jobs, errors = load_job_files([EXAMPLE])
    assert errors == []
    [job] = jobs
    assert job.config.type == "segment_export" and job.config.call_type == "identify"
    run = JobRun(job.config.model_dump(exclude_defaults=False), job_id="segment_example")
    deliver = run.dag.get_task("deliver")
    assert run.dag.get_task("scan").downstream_task_ids == {"deliver"}
    assert deliver.downstream_task_ids == {"report"}
    assert (deliver.user_id_field, deliver.audience_trigger_events, deliver.existing_users) == (
        "email",
        ["enter", "exit"],
        True,
    )


def test_a_user_id_field_that_is_not_exported_is_refused() -> None:
    from pydantic import ValidationError

    from lytics_provider.jobs.types.segment import SegmentExportJob

    with pytest.raises(ValidationError, match=r"not \['email'\]; add them to fields"):
        SegmentExportJob(type="segment_export", audience="a", user_id_field="email", fields=["first_name"])


# -- the hook against the stand-in -------------------------------------------------------------------


def test_a_batch_is_posted_with_the_write_key_as_basic_user(stand: SegmentSandbox) -> None:
    hook = SegmentBatchHook()
    assert hook.test_connection()[0] is True
    hook.send_batch([{"type": "identify", "userId": "u1", "messageId": "m1", "traits": {"a": 1}}])
    assert list(stand.sources[KEY].events) == ["m1"]  # filed under the source whose key was the Basic user
    body = json.dumps({"batch": [{"type": "identify", "userId": "u9"}]})
    anonymous = requests.post(
        f"{stand.url}/v1/batch", data=body, headers={"Content-Type": "application/json"}
    )
    assert anonymous.status_code == 400 and "write key" in anonymous.json()["message"]
    other = requests.post(
        f"{stand.url}/v1/batch",
        data=body,
        auth=("not-a-source", ""),
        headers={"Content-Type": "application/json"},
    )
    assert other.status_code == 200 and stand.dropped[-1][0] == "unknown write key"


def test_the_stand_in_refuses_what_segment_refuses(stand: SegmentSandbox) -> None:
    hook = SegmentBatchHook()
    big = {"type": "track", "userId": "u1", "event": "enter", "properties": {"x": "y" * MAX_MESSAGE_BYTES}}
    with pytest.raises(BatchRefused, match="per event"):
        hook.send_batch([big])
    many = [
        {"type": "track", "userId": f"u{i}", "event": "e", "properties": {"x": "y" * 30_000}}
        for i in range(20)
    ]
    with pytest.raises(BatchRefused, match=str(MAX_BATCH_BYTES)):
        hook.send_batch(many)
    hook.send_batch([{"type": "identify", "traits": {}}, {"type": "track", "userId": "u2"}])
    assert [reason for reason, _ in stand.dropped] == [
        "no userId or anonymousId",
        "track event without a name",
    ]
    assert stand.sources[KEY].events == {}


def test_429_waits_out_retry_after(stand: SegmentSandbox) -> None:
    waits: list[float] = []
    stand.faults.add("429", path_regex="/v1/batch", retry_after=3, times=2)
    hook = SegmentBatchHook(retry_policy=http.RetryPolicy(sleep=waits.append))
    hook.send_batch([{"type": "identify", "userId": "u1", "messageId": "m2"}])
    assert waits == [3.0, 3.0]
    assert "m2" in stand.sources[KEY].events


def test_a_connection_without_write_key_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SEGMENT_BROKEN", json.dumps({"conn_type": "segment", "extra": {}}))
    with pytest.raises(SegmentConfigError, match="write_key"):
        SegmentBatchHook("segment_broken")
    assert issubclass(SegmentConfigError, AirflowFailException)


def test_a_refused_batch_names_no_write_key(stand: SegmentSandbox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    stand.faults.add("5xx", path_regex="/v1/batch", status=503, times=1)
    hook = SegmentBatchHook()
    hook.send_batch([{"type": "identify", "userId": "u1", "messageId": "m3"}])
    with pytest.raises(BatchRefused) as refused:
        hook.send_batch([{"type": "identify", "userId": "u1", "traits": {"x": "y" * 40_000}}])
    assert KEY not in caplog.text + str(refused.value)
    assert base64.b64encode(f"{KEY}:".encode()).decode() not in caplog.text


# -- the adapter: oversized events are rejects, the rest of the batch goes ---------------------------


def test_an_oversized_event_is_a_reject_and_its_batch_still_goes(
    stand: SegmentSandbox, tmp_path: Path
) -> None:
    current = snapshot(
        tmp_path / "a.db", [member(1), member(2, bio="z" * (MAX_MESSAGE_BYTES + 10)), member(3)]
    )
    dest = SegmentDestination(
        hook=SegmentBatchHook(),
        audience_name="VIP",
        job_id="job",
        run_id="run1",
        audience="vip",
        batch_size=10,
    )
    with closing(SyncPlan(tmp_path / "plan.db")) as plan:
        plan.set_step("planned", plan_changes(plan, dest, current, None))
        dest.act(plan)
        rejected = list(plan.iter_outcomes(rejected_only=True))
    assert [(r[3], "Segment accepts at most" in (r[6] or "")) for r in rejected] == [("u2", True)]
    events = stand.sources[KEY].events
    assert set(events) == {event_id("job", "run1", f"u{i}", "enter") for i in (1, 3)}
    assert all(e["traits"]["audience_VIP"] is True and e["type"] == "identify" for e in events.values())


# -- whole runs: scan -> deliver -> report ----------------------------------------------------------


def config(**extra: Any) -> dict[str, Any]:
    return {"type": "segment_export", "audience": AUDIENCE, "batch_size": 7, **extra}


def test_identify_run_then_churn_sends_true_then_false(stand: SegmentSandbox, lytics: Any) -> None:
    run = JobRun(config(), job_id="seg_identify")
    first = run.run()
    events = stand.sources[KEY].events
    members = {m["_uid"] for m in lytics.expected_members(AUDIENCE)}
    assert first["report"]["delivery"]["outcomes"] == {"enter:Sent": 40}
    assert stand.members_in(KEY, "audience_Vip Buyers") == members
    run_id = run.context["run_id"]
    assert all(
        e["messageId"] == event_id("seg_identify", run_id, e["userId"], "enter") for e in events.values()
    )
    lytics.account.set_churn(AUDIENCE, exits=2, enters=2, changes=0)
    lytics.set_version(AUDIENCE, 1)
    second = JobRun(config(), job_id="seg_identify", day=24).run()
    assert second["report"]["delivery"]["outcomes"] == {"enter:Sent": 2, "exit:Sent": 2}
    now = {m["_uid"] for m in lytics.expected_members(AUDIENCE)}
    assert stand.members_in(KEY, "audience_Vip Buyers") == now
    exits = [e for e in events.values() if e["traits"].get("audience_Vip Buyers") is False]
    assert {e["userId"] for e in exits} == members - now
    assert len(events) == 44


def test_track_run_sends_enter_events_with_properties(stand: SegmentSandbox, lytics: Any) -> None:
    JobRun(config(call_type="track", fields=["email", "first_name"]), job_id="seg_track").run()
    events = list(stand.sources[KEY].events.values())
    assert len(events) == 40 and {e["event"] for e in events} == {"enter"}
    assert set(events[0]["properties"]) == {"email", "first_name", "audience"}
    assert events[0]["properties"]["audience"] == AUDIENCE
    assert stand.entered(KEY) == {m["_uid"] for m in lytics.expected_members(AUDIENCE)}


def test_existing_users_off_sends_nothing_on_the_first_run(stand: SegmentSandbox, lytics: Any) -> None:
    report = JobRun(config(existing_users=False), job_id="seg_existing").run()["report"]
    assert stand.sources[KEY].events == {} and report["delivery"]["outcomes"] == {
        "enter:SkippedExistingUser": 40
    }


def test_an_interrupted_run_resumes_and_segment_holds_each_event_once(
    stand: SegmentSandbox, lytics: Any
) -> None:
    run = JobRun(config(), job_id="seg_retry")
    run.run(until="scan")
    stand.faults.add("5xx", status=503, path_regex="/v1/batch", after=2, times=None)
    with pytest.raises(http.ServiceError):
        run.run()
    assert len(stand.sources[KEY].events) == 14  # two acknowledged batches of 7
    stand.faults.clear()
    run.run()
    assert len(stand.sources[KEY].events) == 40 and stand.duplicates == 0
    run_id = run.context["run_id"]
    uids = {m["_uid"] for m in lytics.expected_members(AUDIENCE)}
    assert set(stand.sources[KEY].events) == {event_id("seg_retry", run_id, u, "enter") for u in uids}
