"""Webhooks Audience Triggers: CloudEvents in batches to the TLS receiver, OAuth 2.0 client credentials.

Semantic "churn" with exits sent: ``held()`` is the members whose latest event at the receiver is
an enter; ``received()`` counts every event the receiver accepted, duplicates included. The
receiver refuses (422) events whose email is not an address, so those land in rejects.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, valid_email


@pytest.fixture(scope="session")
def webhooks_stand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from lytics_sandbox.webhooks import WebhookReceiver, make_tls

    with WebhookReceiver(make_tls(tmp_path_factory.mktemp("webhooks-tls")), auth="oauth2") as receiver:
        yield receiver


def uid_with_valid_email(member: dict[str, Any]) -> str | None:
    """Events are keyed by ``_uid``; the receiver refuses members whose email is not an address."""
    return member["_uid"] if valid_email(member) else None


def webhooks(stands: Stands) -> Target:
    from lytics_sandbox.webhooks import connection_json

    receiver = stands.webhooks_stand
    receiver.reset()
    receiver.auth = "oauth2"
    receiver.require_valid_email = True
    secret = f"wh-{stands.name}-secret"
    receiver.client_secret = secret
    stands.monkeypatch.setenv("AIRFLOW_CONN_WEBHOOKS_CONFORMANCE", connection_json(receiver))

    def held() -> set[str]:
        return receiver.held()

    def received() -> int:
        return len(receiver.received(stands.name)) + receiver.duplicate_deliveries

    def state() -> dict[str, bytes]:
        events = sorted((e.id, e.kind, e.uid) for e in receiver.received())
        return {"events": json.dumps(events).encode()}

    def break_credentials() -> None:
        receiver.client_secret = f"{secret}-rotated"
        receiver.expire_tokens()

    @contextmanager
    def interrupt() -> Iterator[None]:
        receiver.faults.add("5xx", status=503, path_regex=r"/hooks/", after=2, times=None)
        try:
            yield
        finally:
            receiver.faults.clear()

    config = {
        "type": "webhooks_audience_triggers",
        "audience": AUDIENCE,
        "webhooks_conn_id": "webhooks_conformance",
        "webhook_url": receiver.url(stands.name),
        "cloud_events": True,
        "existing_users": True,
        "batch_events": True,
        "batch_size": 10,
    }
    return Target(config, secret, held, received, state, break_credentials, interrupt)


DESTINATION = Destination(
    "webhooks_audience_triggers",
    "webhooks_audience_triggers",
    "churn",
    webhooks,
    uid_with_valid_email,
    removes_exits=True,
    stand="webhooks_stand",
)
