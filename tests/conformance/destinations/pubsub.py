"""Google Cloud Pub/Sub Export Audience on the gRPC stand-in: audience events on a topic (semantic
churn: the members whose latest event is an enter are held; every message counts as received)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from lytics_sandbox.google_keys import service_account_key
from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, uid
from tests.conformance.destinations._event_readback import held_members

PROJECT = "conformance"


@pytest.fixture(scope="session")
def pubsub_stand() -> Iterator[Any]:
    from lytics_sandbox.pubsub import PubSubSandbox

    with PubSubSandbox() as stand:
        yield stand


def pubsub(stands: Stands) -> Target:
    import grpc

    stand = stands.pubsub_stand
    stand.clear()
    # the emulator client never signs with the key
    key = service_account_key(PROJECT, "https://oauth2.googleapis.com/token", "conformance")
    secret = key["private_key"].splitlines()[5]  # one line of the private key
    stands.monkeypatch.setenv("PUBSUB_EMULATOR_HOST", stand.address)
    conn = {
        "conn_type": "google_cloud_platform",
        "extra": {"project": PROJECT, "keyfile_dict": json.dumps(key)},
    }
    stands.monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_CONFORMANCE", json.dumps(conn))
    topic = f"conformance-{stands.name}"
    topic_path = f"projects/{PROJECT}/topics/{topic}"

    def sent() -> list[Any]:
        return stand.messages(topic_path)

    def held() -> set[str]:
        return held_members((json.loads(m.data)["_uid"], m.attributes["event_type"]) for m in sent())

    def state() -> dict[str, bytes]:
        rows = [[m.data.decode(), dict(m.attributes)] for m in sent()]
        return {"messages": json.dumps(rows, sort_keys=True).encode()}

    @contextmanager
    def interrupt() -> Iterator[None]:
        stand.fail("Publish", grpc.StatusCode.UNAVAILABLE, times=None, after=1)
        try:
            yield
        finally:
            stand.clear()

    config = {
        "type": "pubsub_export_audience",
        "audience": AUDIENCE,
        "gcp_conn_id": "google_cloud_conformance",
        "topic": topic,
        "create_topic": True,
        "fields": ["email", "first_name"],
        "batch_size": 50,
        "retry_seconds": 0.5,
    }
    return Target(config, secret, held, lambda: len(sent()), state, lambda: stand.deny(PROJECT), interrupt)


DESTINATION = Destination(
    "pubsub_export_audience",
    "pubsub_export_audience",
    "churn",
    pubsub,
    uid,
    removes_exits=True,
    rejects=False,
    stand="pubsub_stand",
)
