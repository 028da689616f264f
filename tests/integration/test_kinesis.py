# ruff: noqa: F811 - pytest fixtures imported from conftest_warehouse
"""Amazon Kinesis on the moto server: audience events in PutRecords calls of at most 500, only failed
records resent, rejects, a killed and retried delivery, and the activity import's checkpoint."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.kinesis import LyticsKinesisHook, partition_key
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.operators.kinesis import KinesisAudienceTriggersOperator
from lytics_provider.pipeline.workarea import JobState
from lytics_provider.sync.event_batches import ResendExhausted
from lytics_provider.sync.events import event_id
from lytics_provider.transfers.kinesis_to_lytics import CHECKPOINT_KEY, KinesisToLyticsOperator
from lytics_sandbox.faults import FaultRule
from tests.helpers import make_context, run_task
from tests.integration.aws_events import (
    FlakyKinesis,
    aws_connection,
    client,
    events_of,
    stream_records,
    sync_inputs,
    wrap_client,
)
from tests.integration.conftest_warehouse import lytics_env, moto_endpoint  # noqa: F401 - fixtures
from tests.integration.test_sync_engine import member, snapshot

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def stream(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A fresh two-shard stream, the ``aws_default`` connection and a private data directory."""
    aws_connection(monkeypatch, moto_endpoint)
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    name = f"lytics_triggers_{uuid.uuid4().hex[:8]}"
    kinesis = client("kinesis", moto_endpoint)
    kinesis.create_stream(StreamName=name, ShardCount=2)
    return name


def operator(stream: str, **kwargs) -> KinesisAudienceTriggersOperator:
    op = KinesisAudienceTriggersOperator(task_id="deliver", job_id="job", stream_name=stream, **kwargs)
    op.backoff_base = 0.001
    return op


def test_events_go_in_calls_of_500_keyed_by_member_with_their_event_ids(
    stream: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clients = wrap_client(monkeypatch, LyticsKinesisHook, FlakyKinesis)
    current = snapshot(tmp_path / "a.db", [member(i) for i in range(1200)])
    report = operator(stream, export_fields=["_uid", "email"]).run_sync(
        sync_inputs(current, tmp_path / "run")
    )
    assert report["outcomes"] == {"enter:Sent": 1200}
    assert [len(call) for call in clients[0].calls] == [500, 500, 200]
    assert report["kinesis"]["calls"] == 3
    records = stream_records(client("kinesis", moto_endpoint), stream)
    events = events_of([r["Data"] for r in records])
    assert len(events) == 1200
    assert {e["id"] for e in events} == {event_id("job", "run1", f"u{i}", "enter") for i in range(1200)}
    first = next(e for e in events if e["uid"] == "u7")
    assert first["event"] == "enter" and first["audience"] == "vip"
    assert first["user"] == {"_uid": "u7", "email": "U7@Example.com"}  # Export Fields only
    assert all(r["PartitionKey"] == json.loads(r["Data"])["uid"] for r in records)
    assert len({r["PartitionKey"] for r in records}) == 1200


def test_only_the_failed_records_are_resent_and_throttling_waits(
    stream: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def fail(call: int, index: int, record: dict) -> str | None:
        if call == 1 and index % 7 == 0:
            return "ProvisionedThroughputExceededException"
        if call == 1 and index % 11 == 0:
            return "InternalFailure"
        return None

    clients = wrap_client(monkeypatch, LyticsKinesisHook, lambda real: FlakyKinesis(real, fail))
    current = snapshot(tmp_path / "a.db", [member(i) for i in range(300)])
    report = operator(stream).run_sync(sync_inputs(current, tmp_path / "run"))
    first, resend = clients[0].calls
    failed = [r for i, r in enumerate(first) if i % 7 == 0 or i % 11 == 0]
    assert resend == failed  # the failed records alone, in their order
    assert report["outcomes"] == {"enter:Sent": 300} and report["rejected"] == 0
    stats = report["kinesis"]
    assert stats["resent"] == len(failed) and stats["resend_rounds"] == 1
    assert stats["failure_codes"] == {
        "InternalFailure": sum(1 for i in range(300) if i % 11 == 0 and i % 7),
        "ProvisionedThroughputExceededException": sum(1 for i in range(300) if i % 7 == 0),
    }
    ids = Counter(
        json.loads(r["Data"])["id"] for r in stream_records(client("kinesis", moto_endpoint), stream)
    )
    assert len(ids) == 300 and set(ids.values()) == {1}


def test_records_refused_for_good_and_oversized_ones_land_in_rejects(
    stream: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def fail(call: int, index: int, record: dict) -> str | None:
        return "InvalidArgumentException" if json.loads(record["Data"])["uid"] == "u3" else None

    wrap_client(monkeypatch, LyticsKinesisHook, lambda real: FlakyKinesis(real, fail))
    rows = [member(i) for i in range(10)]
    rows[5]["notes"] = "x" * (1024 * 1024)
    current = snapshot(tmp_path / "a.db", rows)
    report = operator(stream).run_sync(sync_inputs(current, tmp_path / "run"))
    assert report["outcomes"] == {"enter:Sent": 8, "enter:Rejected": 2}
    rejects = {
        json.loads(line)["uid"]: json.loads(line)["reason"]
        for line in Path(report["rejects_file"]).read_text().splitlines()
    }
    assert rejects["u3"] == "InvalidArgumentException: injected InvalidArgumentException"
    assert rejects["u5"].startswith("EntryTooLarge:") and "export_fields" in rejects["u5"]
    uids = {json.loads(r["Data"])["uid"] for r in stream_records(client("kinesis", moto_endpoint), stream)}
    assert uids == {f"u{i}" for i in range(10)} - {"u3", "u5"}


def test_a_kill_between_calls_then_the_retry_delivers_every_event_once(
    stream: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wrap_client(monkeypatch, LyticsKinesisHook, lambda real: FlakyKinesis(real, crash_before=3))
    current = snapshot(tmp_path / "a.db", [member(i) for i in range(1700)])
    with pytest.raises(ConnectionError):
        operator(stream).run_sync(sync_inputs(current, tmp_path / "run"))
    assert len(stream_records(client("kinesis", moto_endpoint), stream)) == 1000
    monkeypatch.undo()
    aws_connection(monkeypatch, moto_endpoint)
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    clients = wrap_client(monkeypatch, LyticsKinesisHook, FlakyKinesis)
    report = operator(stream).run_sync(sync_inputs(current, tmp_path / "run"))
    assert [len(c) for c in clients[0].calls] == [500, 200]  # the retry starts after the acknowledged calls
    assert report["outcomes"] == {"enter:Sent": 1700}
    ids = Counter(
        json.loads(r["Data"])["id"] for r in stream_records(client("kinesis", moto_endpoint), stream)
    )
    assert len(ids) == 1700 and set(ids.values()) == {1}


def test_throttling_that_outlasts_the_resends_fails_and_the_retry_sends_only_the_rest(
    stream: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def always_throttled(call: int, index: int, record: dict) -> str | None:
        return "ProvisionedThroughputExceededException" if index >= 100 or call > 1 else None

    wrap_client(monkeypatch, LyticsKinesisHook, lambda real: FlakyKinesis(real, always_throttled))
    current = snapshot(tmp_path / "a.db", [member(i) for i in range(400)])
    with pytest.raises(ResendExhausted):
        operator(stream, resend_attempts=3).run_sync(sync_inputs(current, tmp_path / "run"))
    assert len(stream_records(client("kinesis", moto_endpoint), stream)) == 100
    monkeypatch.undo()
    aws_connection(monkeypatch, moto_endpoint)
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    clients = wrap_client(monkeypatch, LyticsKinesisHook, FlakyKinesis)
    report = operator(stream).run_sync(sync_inputs(current, tmp_path / "run"))
    assert [len(c) for c in clients[0].calls] == [300]  # the 100 delivered before the failure are kept
    assert report["outcomes"] == {"enter:Sent": 400}
    ids = Counter(
        json.loads(r["Data"])["id"] for r in stream_records(client("kinesis", moto_endpoint), stream)
    )
    assert len(ids) == 400 and set(ids.values()) == {1}


def test_an_answer_lost_after_kinesis_took_the_call_resends_the_same_event_ids(
    stream: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wrap_client(monkeypatch, LyticsKinesisHook, lambda real: FlakyKinesis(real, crash_after=1))
    current = snapshot(tmp_path / "a.db", [member(i) for i in range(50)])
    with pytest.raises(ConnectionError):
        operator(stream).run_sync(sync_inputs(current, tmp_path / "run"))
    monkeypatch.undo()
    aws_connection(monkeypatch, moto_endpoint)
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    operator(stream).run_sync(sync_inputs(current, tmp_path / "run"))
    events = events_of([r["Data"] for r in stream_records(client("kinesis", moto_endpoint), stream)])
    # Kinesis keeps both copies; consumers drop the second by its id
    assert len(events) == 100 and len({e["id"] for e in events}) == 50


def test_an_unusable_stream_key_fails_the_task_at_once(
    stream: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wrap_client(
        monkeypatch,
        LyticsKinesisHook,
        lambda real: FlakyKinesis(real, lambda c, i, r: "KMSAccessDeniedException"),
    )
    current = snapshot(tmp_path / "a.db", [member(i) for i in range(5)])
    with pytest.raises(AirflowFailException, match="KMSAccessDeniedException"):
        operator(stream).run_sync(sync_inputs(current, tmp_path / "run"))


def test_long_member_keys_are_hashed_into_partition_keys() -> None:
    assert partition_key("u1") == "u1"
    long = "x" * 300
    assert len(partition_key(long)) == 64 and partition_key(long) == partition_key(long)


# -- Import Activity Data ---------------------------------------------------------------------------


def _put(moto_endpoint: str, stream: str, rows: list[object]) -> None:
    kinesis = client("kinesis", moto_endpoint)
    kinesis.put_records(
        StreamName=stream,
        Records=[
            {"Data": json.dumps(row).encode() if not isinstance(row, bytes) else row, "PartitionKey": f"k{i}"}
            for i, row in enumerate(rows)
        ],
    )


def _import(stream: str, **kwargs) -> KinesisToLyticsOperator:
    return KinesisToLyticsOperator(
        task_id="import", job_id="kinesis_import", stream_name=stream, stream="kinesis_activity", **kwargs
    )


def test_import_resumes_from_its_checkpoint_after_a_failure_and_on_the_next_run(
    lytics_env, stream: str, moto_endpoint: str
) -> None:
    rows: list[object] = [{"n": i, "event": "open"} for i in range(40)]
    rows[17] = b"not json"
    rows[23] = [1, 2]
    _put(moto_endpoint, stream, rows)
    # batches of 5 records; Lytics fails from the 4th request on
    lytics_env.faults.add(FaultRule("5xx", path_regex="/collect/json/kinesis_activity", after=3, times=None))
    with pytest.raises(Exception):  # noqa: B017 - the collect API's failure, whatever its type
        run_task(_import(stream, batch_size=5), make_context())
    lytics_env.faults.clear()
    saved = JobState("kinesis_import").get(CHECKPOINT_KEY)
    assert saved and len(lytics_env.collected("kinesis_activity")) == 15
    report = run_task(_import(stream, batch_size=5), make_context())
    ns = [r["n"] for r in lytics_env.collected("kinesis_activity")]
    assert sorted(ns) == sorted(i for i in range(40) if i not in (17, 23)) and len(ns) == 38
    assert report["rejected"] == 2
    reasons = [json.loads(line)["reason"] for line in Path(report["rejects_file"]).read_text().splitlines()]
    assert reasons[0].startswith("not JSON") or reasons[1].startswith("not JSON")
    assert any("JSON list, not an object" in r for r in reasons)

    _put(moto_endpoint, stream, [{"n": 100 + i} for i in range(6)])
    later = run_task(_import(stream, batch_size=5), make_context(run_id="r2"))
    assert later["rows"] == 6 and later["rejected"] == 0
    assert sorted(r["n"] for r in lytics_env.collected("kinesis_activity"))[-6:] == list(range(100, 106))
    assert run_task(_import(stream), make_context(run_id="r3"))["rows"] == 0


def test_import_dry_run_reads_and_sends_nothing(lytics_env, stream: str, moto_endpoint: str) -> None:
    _put(moto_endpoint, stream, [{"n": i} for i in range(8)])
    report = run_task(_import(stream), make_context(params={"dry_run": True}))
    assert report["dry_run"] is True and sum(s["read"] for s in report["shards"].values()) == 8
    assert lytics_env.collected("kinesis_activity") == []
    assert JobState("kinesis_import").get(CHECKPOINT_KEY) is None


def test_the_example_configs_load() -> None:
    paths = sorted((ROOT / "include" / "jobs").glob("kinesis_*.yaml"))
    loaded, errors = load_job_files(paths)
    assert errors == [] and {job.config.type for job in loaded} == {
        "kinesis_export_audience_triggers",
        "kinesis_import_activity_data",
    }
    export = next(job for job in loaded if job.config.type == "kinesis_export_audience_triggers")
    assert export.config.stream_name == "lytics_triggers_stream"


def test_stream_name_follows_the_seed_rule() -> None:
    from pydantic import ValidationError

    from lytics_provider.jobs.types.kinesis import KinesisExportTriggersJob

    with pytest.raises(ValidationError, match="stream_name"):
        KinesisExportTriggersJob(
            type="kinesis_export_audience_triggers", audience="a", stream_name="bad name!"
        )
