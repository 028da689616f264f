"""HubSpot Export Audiences: contacts upserted and kept in a static list, exits removed from it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, count_bodies, valid_email


@pytest.fixture(scope="session")
def hubspot_stand() -> Iterator[Any]:
    from lytics_sandbox.hubspot import HubspotSandbox

    with HubspotSandbox() as sandbox:
        yield sandbox


def hubspot(stands: Stands) -> Target:
    hs = stands.hubspot_stand
    secret = f"pat-na1-{stands.name}"
    hs.token = secret
    stands.monkeypatch.setenv("AIRFLOW_CONN_HUBSPOT_CONFORMANCE", json.dumps(hs.connection()))
    list_name = f"Lytics {stands.name}"
    adds = count_bodies(hs, "memberships_add", lambda request: len(request.json() or []))
    removed = count_bodies(hs, "memberships_remove", lambda request: len(request.json() or []))

    def list_id() -> str | None:
        found = hs.data.list_by_name(list_name)
        return found["listId"] if found else None

    def held() -> set[str]:
        found = list_id()
        return hs.data.members(found) if found else set()

    def state() -> dict[str, bytes]:
        return {
            "members": json.dumps(sorted(held())).encode(),
            "lists": json.dumps(sorted(hs.data.lists)).encode(),
        }

    def break_credentials() -> None:
        hs.token = f"{secret}-rotated"

    @contextmanager
    def interrupt() -> Iterator[None]:
        hs.faults.add("5xx", status=503, path_regex=r"/memberships/add", method="PUT", after=1, times=None)
        try:
            yield
        finally:
            hs.faults.clear()

    config = {
        "type": "hubspot_export",
        "audience": AUDIENCE,
        "hubspot_conn_id": "hubspot_conformance",
        "list_name": list_name,
        "batch_size": 50,
    }
    return Target(config, secret, held, lambda: sum(adds) + sum(removed), state, break_credentials, interrupt)


DESTINATION = Destination(
    "hubspot_export",
    "hubspot_export",
    "churn",
    hubspot,
    valid_email,
    removes_exits=True,
    stand="hubspot_stand",
)
