"""Google Cloud Pub/Sub through Airflow's PubSubHook against the gRPC stand-in
(``PUBSUB_EMULATOR_HOST``): Export Audience, Export Stream and Import Events, each delivering once
across a killed and retried run; imports acknowledge only what Lytics accepted; permanent errors
fail fast."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.pubsub import LyticsPubSubHook
from lytics_provider.integrations.catalog import read_integration, todo_entries
from lytics_provider.jobs.loader import load_job_files
from lytics_sandbox.faults import FaultRule
from lytics_sandbox.pubsub import PubSubSandbox
from tests.conformance.runner import JobRun
from tests.integration.conftest_warehouse import lytics_env  # noqa: F401 - fixture

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = ["pubsub_export_audience.yaml", "pubsub_export_stream.yaml", "pubsub_import_events.yaml"]
DECLARATION = REPO / "lytics_provider" / "integrations" / "pubsub.yaml"
PROJECT = "lytics-test"


@pytest.fixture(scope="session")
def pubsub_stand() -> Iterator[PubSubSandbox]:
    with PubSubSandbox() as stand:
        yield stand


@pytest.fixture
def lytics(lytics_env: Any) -> Any:  # noqa: F811 - the fixture imported above
    """The Lytics stand-in with its connection and a private data directory."""
    return lytics_env


@pytest.fixture
def topic(pubsub_stand: PubSubSandbox, lytics: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new topic id; the Google connection (anonymous, project ``lytics-test``) at the stand-in."""
    pubsub_stand.clear()
    pubsub_stand.calls.clear()
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_stand.address)
    monkeypatch.setenv(
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT",
        json.dumps(
            {"conn_type": "google_cloud_platform", "extra": {"project": PROJECT, "is_anonymous": True}}
        ),
    )
    return f"lytics-{uuid.uuid4().hex[:8]}"


def path(topic: str) -> str:
    return f"projects/{PROJECT}/topics/{topic}"


def messages(stand: PubSubSandbox, topic: str) -> list[Any]:
    return stand.messages(path(topic))


def audience_config(topic: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "pubsub_export_audience",
        "audience": "high_value",
        "topic": topic,
        "create_topic": True,
        **extra,
    }


def test_registration_and_examples() -> None:
    assert todo_entries(read_integration(DECLARATION)) == []
    jobs, errors = load_job_files([REPO / "include" / "jobs" / name for name in EXAMPLES])
    assert errors == []
    assert [job.config.type for job in jobs] == [
        "pubsub_export_audience",
        "pubsub_export_stream",
        "pubsub_import_events",
    ]


def test_the_stand_in_follows_the_publish_contract(topic: str, pubsub_stand: PubSubSandbox) -> None:
    hook = LyticsPubSubHook()
    hook.create_topic(topic=topic, project_id=PROJECT)
    ids = hook.publish_batch(PROJECT, topic, [(b'{"a":1}', {"event_id": "e1"}), (b"", {"only": "attrs"})])
    assert len(set(ids)) == 2 and [m.data for m in messages(pubsub_stand, topic)] == [b'{"a":1}', b""]
    from google.api_core import exceptions

    with pytest.raises(exceptions.InvalidArgument, match="message"):
        hook.publish_batch(PROJECT, topic, [(b"", {})])  # neither data nor attributes
    with pytest.raises(exceptions.InvalidArgument, match="Invalid resource name"):
        hook.publish_batch(PROJECT, "x", [(b"1", {})])  # ids are at least 3 characters
    with pytest.raises(exceptions.NotFound):
        hook.publish_batch(PROJECT, "no-such-topic", [(b"1", {})])


def test_export_audience_creates_the_topic_then_sends_only_the_churn(
    topic: str, pubsub_stand: PubSubSandbox, lytics: Any
) -> None:
    report = JobRun(audience_config(topic, fields=["email"]), job_id="ps_churn").run()["report"]
    first = messages(pubsub_stand, topic)
    members = {m["_uid"]: m for m in lytics.expected_members("high_value")}
    assert report["delivery"]["created_topic"] is True
    assert len(first) == len(members) == 500
    data = [json.loads(m.data) for m in first]
    assert {d["_uid"] for d in data} == set(members) and data[0]["email"] == members[data[0]["_uid"]]["email"]
    attrs = [dict(m.attributes) for m in first]
    assert {a["event_type"] for a in attrs} == {"enter"} and {a["audience"] for a in attrs} == {"high_value"}
    assert len({a["event_id"] for a in attrs}) == 500
    assert pubsub_stand.calls["Publish"] == 5  # batches of 100, one Publish each

    lytics.set_churn("high_value", exits=4, enters=6, changes=0)
    lytics.set_version("high_value", 1)
    JobRun(audience_config(topic, fields=["email"]), job_id="ps_churn", day=24).run()
    second = messages(pubsub_stand, topic)[500:]
    assert sorted(m.attributes["event_type"] for m in second) == ["enter"] * 6 + ["exit"] * 4


def test_a_killed_export_retried_publishes_every_event_once(topic: str, pubsub_stand: PubSubSandbox) -> None:
    run = JobRun(audience_config(topic, batch_size=50, retry_seconds=0.5), job_id="ps_kill")
    run.run(until="scan")
    pubsub_stand.fail("Publish", grpc.StatusCode.UNAVAILABLE, times=None, after=3)
    with pytest.raises(Exception) as failure:
        run.run()
    assert not isinstance(failure.value, AirflowFailException)  # a transient outage: Airflow retries
    assert len(messages(pubsub_stand, topic)) == 150
    pubsub_stand.clear()
    pubsub_stand.calls.clear()
    run.run()
    ids = [m.attributes["event_id"] for m in messages(pubsub_stand, topic)]
    assert len(ids) == len(set(ids)) == 500


def test_a_transient_publish_failure_is_retried_by_the_call(topic: str, pubsub_stand: PubSubSandbox) -> None:
    pubsub_stand.fail("Publish", grpc.StatusCode.UNAVAILABLE, times=1)
    JobRun(audience_config(topic, user_limit=10), job_id="ps_transient").run()
    assert len(messages(pubsub_stand, topic)) == 10 and pubsub_stand.calls["Publish"] == 2


@pytest.mark.parametrize("breakage", ["missing_topic", "permission_denied"])
def test_permanent_errors_fail_fast(topic: str, pubsub_stand: PubSubSandbox, breakage: str) -> None:
    config = audience_config(topic, user_limit=20)
    if breakage == "missing_topic":
        config["create_topic"] = False
    else:
        pubsub_stand.deny(PROJECT)
    run = JobRun(config, job_id=f"ps_{breakage}")
    run.run(until="scan")
    with pytest.raises(
        AirflowFailException, match="create_topic" if breakage == "missing_topic" else "authorized"
    ):
        run.run()
    assert pubsub_stand.calls.get("Publish", 0) == 0


def stream_config(topic: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "pubsub_export_stream",
        "stream": "web_events",
        "topic": topic,
        "create_topic": True,
        **extra,
    }


def test_export_stream_sends_only_new_events_once_across_a_kill(
    topic: str, pubsub_stand: PubSubSandbox, lytics: Any
) -> None:
    lytics.add_stream_events("web_events", [{"n": i, "url": f"/old/{i}"} for i in range(1500)])
    first = JobRun(stream_config(topic, batch_size=10, retry_seconds=0.5), job_id="ps_stream").run()["export"]
    assert first["first_run"] is True and first["existing_events"] == 1500
    assert messages(pubsub_stand, topic) == []  # existing events are not exported

    lytics.add_stream_events("web_events", [{"n": i, "url": f"/new/{i}"} for i in range(1500, 1535)])
    pubsub_stand.fail("Publish", grpc.StatusCode.UNAVAILABLE, times=None, after=2)
    with pytest.raises(Exception):  # noqa: B017 - the outage outlasts the Publish retries
        JobRun(stream_config(topic, batch_size=10, retry_seconds=0.5), job_id="ps_stream", day=24).run()
    assert len(messages(pubsub_stand, topic)) == 20
    pubsub_stand.clear()
    pubsub_stand.calls.clear()
    report = JobRun(stream_config(topic, batch_size=10), job_id="ps_stream", day=24).run()["export"]
    assert report["published"] == 15
    sent = messages(pubsub_stand, topic)
    assert [json.loads(m.data)["n"] for m in sent] == list(range(1500, 1535))
    assert len({m.attributes["event_id"] for m in sent}) == 35
    again = JobRun(stream_config(topic), job_id="ps_stream", day=25).run()["export"]
    assert again["published"] == 0 and len(messages(pubsub_stand, topic)) == 35


def test_import_acknowledges_only_after_lytics_accepted(
    topic: str, pubsub_stand: PubSubSandbox, lytics: Any
) -> None:
    hook = LyticsPubSubHook()
    hook.create_topic(topic=topic, project_id=PROJECT)
    config = {"type": "pubsub_import_events", "topic": topic, "stream": "app_events", "batch_size": 20}
    JobRun(config, job_id="ps_import").run()  # creates the job's subscription
    subscription = f"projects/{PROJECT}/subscriptions/lytics-ps_import"
    for i in range(50):
        pubsub_stand.publish_direct(path(topic), json.dumps({"user_id": f"u{i}", "n": i}).encode())
    pubsub_stand.publish_direct(path(topic), b"not json")
    pubsub_stand.publish_direct(path(topic), b"[1, 2]")

    acks_before = pubsub_stand.calls.get("Acknowledge", 0)
    lytics.faults.add(FaultRule("5xx", path_regex="/collect/json/app_events", after=1, times=None))
    with pytest.raises(Exception):  # noqa: B017 - Lytics kept failing
        JobRun(config, job_id="ps_import", day=24).run()
    lytics.faults.clear()
    assert pubsub_stand.calls.get("Acknowledge", 0) - acks_before == 1  # only the batch Lytics took
    assert pubsub_stand.backlog(subscription) == 32

    report = JobRun(config, job_id="ps_import", day=24).run()["import"]
    assert pubsub_stand.backlog(subscription) == 0
    stored = lytics.collected("app_events")
    assert sorted(r["n"] for r in stored) == list(range(50))  # each message once
    assert report["rejected"] == 2 and report["acknowledged"] == 32
    rejects = [json.loads(line) for line in Path(report["rejects_file"]).read_text().splitlines()]
    assert len(rejects) == 2 and all(r["message_id"] and r["reason"] for r in rejects)


def test_import_needs_the_topic(topic: str, pubsub_stand: PubSubSandbox) -> None:
    config = {"type": "pubsub_import_events", "topic": topic, "stream": "app_events"}
    with pytest.raises(AirflowFailException, match="does not exist"):
        JobRun(config, job_id="ps_import_missing").run()


def test_a_pull_that_finds_nothing_in_time_means_an_empty_backlog(
    topic: str, pubsub_stand: PubSubSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = LyticsPubSubHook()
    hook.create_topic(topic=topic, project_id=PROJECT)
    hook.ensure_subscription(PROJECT, topic, f"{topic}-sub", 10)
    pubsub_stand.pull_wait = 3.0  # the stand-in would hold the pull longer than the client waits
    try:
        assert hook.pull_batch(PROJECT, f"{topic}-sub", 10, wait_seconds=0.3) == []
    finally:
        pubsub_stand.pull_wait = 0.2
    pubsub_stand.publish_direct(path(topic), b'{"a": 1}')
    assert [m.message.data for m in hook.pull_batch(PROJECT, f"{topic}-sub", 10, wait_seconds=5)] == [
        b'{"a": 1}'
    ]

    from airflow.providers.google.cloud.hooks.pubsub import PubSubException, PubSubHook
    from google.api_core import exceptions

    def pull_failing(error: Exception) -> Any:
        def pull(self: Any, **kwargs: Any) -> Any:
            raise PubSubException("Error pulling messages", error)

        return pull

    monkeypatch.setattr(PubSubHook, "pull", pull_failing(exceptions.DeadlineExceeded("deadline")))
    assert hook.pull_batch(PROJECT, f"{topic}-sub", 10, wait_seconds=1) == []  # the service held it
    monkeypatch.setattr(PubSubHook, "pull", pull_failing(exceptions.PermissionDenied("denied")))
    with pytest.raises(PubSubException):
        hook.pull_batch(PROJECT, f"{topic}-sub", 10, wait_seconds=1)


def test_dry_runs_send_nothing_and_move_nothing(topic: str, pubsub_stand: PubSubSandbox, lytics: Any) -> None:
    hook = LyticsPubSubHook()
    hook.create_topic(topic=topic, project_id=PROJECT)
    importer = {"type": "pubsub_import_events", "topic": topic, "stream": "dry_events"}
    JobRun(importer, job_id="ps_dry_import").run()
    pubsub_stand.publish_direct(path(topic), b'{"a": 1}')
    report = JobRun(importer, job_id="ps_dry_import", day=24, dry_run=True).run()["import"]
    assert report["sent"] == 1 and report["acknowledged"] == 0
    assert lytics.collected("dry_events") == []
    assert pubsub_stand.backlog(f"projects/{PROJECT}/subscriptions/lytics-ps_dry_import") == 1

    lytics.add_stream_events("dry_stream", [{"n": 1}])
    exporter = {"type": "pubsub_export_stream", "stream": "dry_stream", "topic": topic}
    JobRun(exporter, job_id="ps_dry_stream").run()
    lytics.add_stream_events("dry_stream", [{"n": 2}, {"n": 3}])
    dry = JobRun(exporter, job_id="ps_dry_stream", day=24, dry_run=True).run()["export"]
    assert dry["would_publish"] == 2 and len(messages(pubsub_stand, topic)) == 1  # the direct publish only
    real = JobRun(exporter, job_id="ps_dry_stream", day=25).run()["export"]
    assert real["published"] == 2
