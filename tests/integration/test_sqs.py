# ruff: noqa: F811 - pytest fixtures imported from conftest_warehouse
"""Amazon SQS on the moto server: audience events in SendMessageBatch calls of 10, failed messages
resent or rejected by their code, FIFO de-duplication across a retried task, and the examples."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.sqs import LyticsSqsHook, message_group_id
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.operators.sqs import SqsAudienceTriggersOperator
from lytics_provider.sync.events import event_id
from tests.helpers import make_context
from tests.integration.aws_events import (
    FlakySqs,
    aws_connection,
    client,
    drain_queue,
    sync_inputs,
    wrap_client,
)
from tests.integration.conftest_warehouse import moto_endpoint  # noqa: F401 - fixtures
from tests.integration.test_sync_engine import member, snapshot

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    aws_connection(monkeypatch, moto_endpoint)
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    return moto_endpoint


def new_queue(endpoint: str, fifo: bool) -> str:
    name = f"lytics-triggers-{uuid.uuid4().hex[:8]}" + (".fifo" if fifo else "")
    attributes = {"FifoQueue": "true"} if fifo else {}
    return client("sqs", endpoint).create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]


def operator(queue: str, **kwargs) -> SqsAudienceTriggersOperator:
    op = SqsAudienceTriggersOperator(task_id="deliver", job_id="job", sqs_queue=queue, **kwargs)
    op.backoff_base = 0.001
    return op


def bodies(messages: list[dict]) -> list[dict]:
    return [json.loads(m["Body"]) for m in messages]


def test_events_go_ten_a_call_with_their_ids_by_queue_name(
    aws: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = new_queue(aws, fifo=False)
    clients = wrap_client(monkeypatch, LyticsSqsHook, FlakySqs)
    current = snapshot(tmp_path / "a.db", [member(i) for i in range(25)])
    op = operator(url.rsplit("/", 1)[1], export_fields=["_uid", "score"])
    report = op.run_sync(sync_inputs(current, tmp_path / "run"))
    assert report["outcomes"] == {"enter:Sent": 25}
    assert [len(c) for c in clients[0].calls] == [10, 10, 5]
    assert report["fifo"] is False and report["queue_url"] == url
    messages = drain_queue(client("sqs", aws), url)
    events = bodies(messages)
    assert {e["id"] for e in events} == {event_id("job", "run1", f"u{i}", "enter") for i in range(25)}
    assert all(e["user"] == {"_uid": e["uid"], "score": 1} for e in events)
    assert all(
        m["MessageAttributes"]["event_id"]["StringValue"] == json.loads(m["Body"])["id"] for m in messages
    )
    assert {m["MessageAttributes"]["event_type"]["StringValue"] for m in messages} == {"enter"}


def test_failed_messages_are_resent_alone_or_rejected_by_their_code(
    aws: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = new_queue(aws, fifo=False)

    def fail(call: int, index: int, entry: dict) -> str | None:
        uid = json.loads(entry["MessageBody"])["uid"]
        if uid == "u4":
            return "Sender.InvalidParameterValue"  # the sender's fault: a reject
        if call == 1 and index in (1, 6):
            return "InternalError"  # the service's: resent
        if call == 1 and index == 8:
            return "Sender.ThrottlingException"  # throttling: resent even as the sender's fault
        return None

    clients = wrap_client(monkeypatch, LyticsSqsHook, lambda real: FlakySqs(real, fail))
    current = snapshot(tmp_path / "a.db", [member(i) for i in range(20)])
    report = operator(url).run_sync(sync_inputs(current, tmp_path / "run"))
    calls = clients[0].calls
    first = calls[0]
    assert [len(c) for c in calls] == [10, 3, 10]
    assert calls[1] == [first[1], first[6], first[8]]  # the passing failures alone, once
    assert report["outcomes"] == {"enter:Sent": 19, "enter:Rejected": 1}
    (reject,) = [json.loads(line) for line in Path(report["rejects_file"]).read_text().splitlines()]
    assert (
        reject["uid"] == "u4"
        and reject["reason"] == "InvalidParameterValue: injected Sender.InvalidParameterValue"
    )
    assert report["sqs"]["resent"] == 3
    uids = Counter(e["uid"] for e in bodies(drain_queue(client("sqs", aws), url)))
    assert set(uids) == {f"u{i}" for i in range(20)} - {"u4"} and set(uids.values()) == {1}


def test_fifo_retry_after_a_lost_answer_delivers_no_event_twice(
    aws: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = new_queue(aws, fifo=True)
    # the 3rd call reaches SQS, but its answer is lost: the task fails without checkpointing it
    wrap_client(monkeypatch, LyticsSqsHook, lambda real: FlakySqs(real, crash_after=3))
    current = snapshot(tmp_path / "a.db", [member(i) for i in range(45)])
    with pytest.raises(ConnectionError):
        operator(url).run_sync(sync_inputs(current, tmp_path / "run"))
    monkeypatch.undo()
    aws_connection(monkeypatch, aws)
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    clients = wrap_client(monkeypatch, LyticsSqsHook, FlakySqs)
    report = operator(url).run_sync(sync_inputs(current, tmp_path / "run"))
    assert [len(c) for c in clients[0].calls] == [10, 10, 5]  # the 3rd batch is sent again
    assert report["outcomes"] == {"enter:Sent": 45} and report["fifo"] is True
    messages = drain_queue(client("sqs", aws), url)
    ids = Counter(json.loads(m["Body"])["id"] for m in messages)
    assert len(ids) == 45 and set(ids.values()) == {1}  # SQS dropped the resent batch by its ids
    for m in messages:
        body = json.loads(m["Body"])
        assert m["Attributes"]["MessageDeduplicationId"] == body["id"]
        assert m["Attributes"]["MessageGroupId"] == body["uid"]


def test_a_kill_between_calls_then_the_retry_delivers_every_event_once(
    aws: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = new_queue(aws, fifo=False)
    wrap_client(monkeypatch, LyticsSqsHook, lambda real: FlakySqs(real, crash_before=3))
    before = snapshot(tmp_path / "a.db", [member(i) for i in range(30)])
    with pytest.raises(ConnectionError):
        operator(url).run_sync(sync_inputs(before, tmp_path / "run"))
    monkeypatch.undo()
    aws_connection(monkeypatch, aws)
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    operator(url).run_sync(sync_inputs(before, tmp_path / "run"))
    events = bodies(drain_queue(client("sqs", aws), url))
    assert Counter(e["uid"] for e in events) == Counter(f"u{i}" for i in range(30))

    # the next run sends the churn: one exit and one enter
    after = snapshot(tmp_path / "b.db", [member(i) for i in range(1, 31)])
    report = operator(url).run_sync(sync_inputs(after, tmp_path / "run2", "run2", previous=before))
    assert report["outcomes"] == {"enter:Sent": 1, "exit:Sent": 1}
    churn = sorted((e["event"], e["uid"]) for e in bodies(drain_queue(client("sqs", aws), url)))
    assert churn == [("enter", "u30"), ("exit", "u0")]


def test_oversized_messages_are_rejects_and_a_missing_queue_fails_at_once(
    aws: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = new_queue(aws, fifo=False)
    rows = [member(i) for i in range(4)]
    rows[2]["notes"] = "x" * (256 * 1024)
    current = snapshot(tmp_path / "a.db", rows)
    report = operator(url).run_sync(sync_inputs(current, tmp_path / "run"))
    assert report["outcomes"] == {"enter:Sent": 3, "enter:Rejected": 1}
    assert "EntryTooLarge" in Path(report["rejects_file"]).read_text()

    from tests.helpers import run_task

    class Ti:
        def xcom_pull(self, task_ids: str) -> dict:
            return {"snapshot": str(current), "audience": {"slug": "vip"}}

    context = make_context(run_id="r2")
    context["ti"] = Ti()
    with pytest.raises(AirflowFailException, match="NonExistentQueue"):
        run_task(operator("no-such-queue"), context)


def test_member_keys_become_group_ids() -> None:
    assert message_group_id("u1") == "u1"
    assert len(message_group_id("é" * 3)) == 64 and len(message_group_id("x" * 200)) == 64


def test_the_example_config_loads_and_the_queue_name_is_checked() -> None:
    from pydantic import ValidationError

    from lytics_provider.jobs.types.sqs import SqsExportJob

    loaded, errors = load_job_files([ROOT / "include" / "jobs" / "sqs_export_activity_data.yaml"])
    assert errors == [] and loaded[0].config.sqs_queue == "lytics-triggers.fifo"
    with pytest.raises(ValidationError, match="queue name"):
        SqsExportJob(type="sqs_export_activity_data", audience="a", sqs_queue="bad queue")
