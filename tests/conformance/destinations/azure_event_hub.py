"""Azure Event Hub Export Audiences on the HTTPS stand-in: audience events in an event hub (semantic
churn: the members whose latest event is an enter are held; every event counts as received)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, uid
from tests.conformance.destinations._event_readback import held_members


@pytest.fixture(scope="session")
def event_hub_stand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from lytics_sandbox.azure_event_hub import EventHubSandbox
    from lytics_sandbox.tls import local_tls

    tls = local_tls(tmp_path_factory.mktemp("event_hub_tls"))
    stand = EventHubSandbox()
    stand.serve_tls(tls)
    with stand:
        yield stand


def azure_event_hub(stands: Stands) -> Target:
    from lytics_sandbox.azure_event_hub import AccessRule, EventHub

    stand = stands.event_hub_stand
    hub = f"conformance-{stands.name}"
    stand.hubs[hub] = EventHub()
    policy = f"send-{stands.name}"
    secret = f"key-{stands.name}"
    stand.rules[policy] = AccessRule(secret)
    stands.monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(stand.ca_file))
    conn = {"conn_type": "azure_event_hub", "password": stand.connection_string(policy, hub)}
    stands.monkeypatch.setenv("AIRFLOW_CONN_AZURE_EVENT_HUB_CONFORMANCE", json.dumps(conn))

    def sent() -> list[dict[str, Any]]:
        return [json.loads(e["Body"]) for e in stand.events(hub)]

    def held() -> set[str]:
        return held_members((body["uid"], body["event"]) for body in sent())

    def state() -> dict[str, bytes]:
        return {"events": json.dumps(stand.events(hub), sort_keys=True).encode()}

    def break_credentials() -> None:
        stand.rules[policy] = AccessRule(f"{secret}-rotated")

    @contextmanager
    def interrupt() -> Iterator[None]:
        stand.faults.add("5xx", status=503, path_regex=rf"/{hub}/messages$", after=1, times=None)
        try:
            yield
        finally:
            stand.faults.clear()

    config = {
        "type": "azure_event_hub_export",
        "audience": AUDIENCE,
        "azure_event_hub_conn_id": "azure_event_hub_conformance",
        "fields": ["email", "first_name"],
        "batch_size": 50,
    }
    return Target(config, secret, held, lambda: len(sent()), state, break_credentials, interrupt)


DESTINATION = Destination(
    "azure_event_hub_export",
    "azure_event_hub_export",
    "churn",
    azure_event_hub,
    uid,
    removes_exits=True,
    rejects=False,
    stand="event_hub_stand",
)
