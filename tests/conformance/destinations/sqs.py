"""Amazon SQS Export Activity Data on moto, to a FIFO queue: one message per event; a member is held
while its latest event is an enter. The interruption is a connection lost after some calls."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, uid
from tests.conformance.destinations.kinesis import latest_events
from tests.integration.aws_events import client, drain_queue


def sqs(stands: Stands) -> Target:
    from lytics_provider.hooks.sqs import LyticsSqsHook

    secret = f"aws-{stands.name}-secret"
    name = f"conformance-{stands.name}.fifo"
    sqs_client = client("sqs", stands.moto_endpoint)
    url = sqs_client.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})["QueueUrl"]
    conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": secret,
        "extra": {"endpoint_url": stands.moto_endpoint, "region_name": "us-east-1"},
    }
    stands.monkeypatch.setenv("AIRFLOW_CONN_AWS_CONFORMANCE", json.dumps(conn))
    config: dict[str, Any] = {
        "type": "sqs_export_activity_data",
        "audience": AUDIENCE,
        "aws_conn_id": "aws_conformance",
        "sqs_queue": name,
        "export_fields": ["_uid", "email", "first_name"],
    }
    received: list[dict[str, Any]] = []

    def events() -> list[dict[str, Any]]:
        received.extend(json.loads(m["Body"]) for m in drain_queue(sqs_client, url))
        return received

    def state() -> dict[str, bytes]:
        return {"messages": json.dumps([e["id"] for e in events()]).encode()}

    def break_credentials() -> None:
        config["sqs_queue"] = f"missing-{name}"

    @contextmanager
    def interrupt() -> Iterator[None]:
        original = LyticsSqsHook.send_batch_call
        calls = []

        def lost(self: Any, queue_url: str, entries: list[Any]) -> Any:
            calls.append(len(entries))
            if len(calls) > 5:
                raise ConnectionError("connection lost mid-delivery")
            return original(self, queue_url, entries)

        stands.monkeypatch.setattr(LyticsSqsHook, "send_batch_call", lost)
        try:
            yield
        finally:
            stands.monkeypatch.setattr(LyticsSqsHook, "send_batch_call", original)

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
    "sqs_export_activity_data",
    "sqs_export_activity_data",
    "churn",
    sqs,
    uid,
    removes_exits=True,
    rejects=False,
    stand="moto_endpoint",
)
