"""Amazon Kinesis Export Audience Triggers on moto: one record per event; a member is held while its
latest event is an enter. The interruption is throttling that outlasts the resends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, uid
from tests.integration.aws_events import client, stream_records


def latest_events(events: list[dict[str, Any]]) -> set[str]:
    """Members whose latest event (in delivery order) is an enter or a change."""
    latest: dict[str, str] = {}
    for event in events:
        latest[event["uid"]] = event["event"]
    return {member for member, kind in latest.items() if kind in ("enter", "change")}


def kinesis(stands: Stands) -> Target:
    from lytics_provider.hooks.kinesis import LyticsKinesisHook
    from lytics_provider.sync.event_batches import EntryFailure

    secret = f"aws-{stands.name}-secret"
    stream = f"conformance_{stands.name}"
    kinesis_client = client("kinesis", stands.moto_endpoint)
    kinesis_client.create_stream(StreamName=stream, ShardCount=2)
    conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": secret,
        "extra": {"endpoint_url": stands.moto_endpoint, "region_name": "us-east-1"},
    }
    stands.monkeypatch.setenv("AIRFLOW_CONN_AWS_CONFORMANCE", json.dumps(conn))
    config: dict[str, Any] = {
        "type": "kinesis_export_audience_triggers",
        "audience": AUDIENCE,
        "aws_conn_id": "aws_conformance",
        "stream_name": stream,
        "export_fields": ["_uid", "email", "first_name"],
        "resend_attempts": 2,
    }

    def events() -> list[dict[str, Any]]:  # one member's records share a shard, in order
        return [json.loads(r["Data"]) for r in stream_records(kinesis_client, stream)]

    def state() -> dict[str, bytes]:
        return {"records": json.dumps([e["id"] for e in events()]).encode()}

    def break_credentials() -> None:
        config["stream_name"] = f"{stream}-missing"

    @contextmanager
    def interrupt() -> Iterator[None]:
        original = LyticsKinesisHook.put_records_call

        def throttled(self: Any, stream_name: str, entries: list[Any]) -> list[EntryFailure]:
            keep, drop = entries[: len(entries) // 2], entries[len(entries) // 2 :]
            failures = original(self, stream_name, keep) if keep else []
            code = "ProvisionedThroughputExceededException"
            return [*failures, *(EntryFailure(e.key, code, "injected", True) for e in drop)]

        stands.monkeypatch.setattr(LyticsKinesisHook, "put_records_call", throttled)
        try:
            yield
        finally:
            stands.monkeypatch.setattr(LyticsKinesisHook, "put_records_call", original)

    return Target(
        config,
        secret,
        lambda: latest_events(events()),
        lambda: len(events()),
        state,
        break_credentials,
        interrupt,
    )


DESTINATION = Destination(
    "kinesis_export_audience_triggers",
    "kinesis_export_audience_triggers",
    "churn",
    kinesis,
    uid,
    removes_exits=True,
    rejects=False,
    stand="moto_endpoint",
)
