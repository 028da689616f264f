"""Klaviyo Export Audiences: profiles imported into a list by bulk jobs, exits removed from it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, count_bodies, valid_email


@pytest.fixture(scope="session")
def klaviyo_stand() -> Iterator[Any]:
    from lytics_sandbox.klaviyo import KlaviyoSandbox

    with KlaviyoSandbox(polls_to_complete=1) as sandbox:
        yield sandbox


def klaviyo(stands: Stands) -> Target:
    kl = stands.klaviyo_stand
    secret = f"pk_{stands.name}"
    kl.api_key = secret
    stands.monkeypatch.setenv("AIRFLOW_CONN_KLAVIYO_CONFORMANCE", json.dumps(kl.connection()))
    list_name = f"Lytics {stands.name}"
    jobs_before = set(kl.data.jobs)
    removed = count_bodies(kl, "list_remove", lambda request: len((request.json() or {}).get("data") or []))

    def list_id() -> str | None:
        return kl.data.list_by_name(list_name)

    def held() -> set[str]:
        found = list_id()
        return kl.data.list_emails(found) if found else set()

    def received() -> int:
        done = [j for key, j in kl.data.jobs.items() if key not in jobs_before and j["status"] == "complete"]
        return sum(j["completed_count"] for j in done) + sum(removed)

    def state() -> dict[str, bytes]:
        return {
            "members": json.dumps(sorted(held())).encode(),
            "lists": json.dumps(sorted(kl.data.lists)).encode(),
        }

    def break_credentials() -> None:
        kl.api_key = f"{secret}-rotated"

    @contextmanager
    def interrupt() -> Iterator[None]:
        kl.faults.add(
            "5xx",
            status=503,
            path_regex=r"/api/profile-bulk-import-jobs/[^/]+$",
            method="GET",
            after=1,
            times=None,
        )
        try:
            yield
        finally:
            kl.faults.clear()

    config = {
        "type": "klaviyo_export",
        "audience": AUDIENCE,
        "klaviyo_conn_id": "klaviyo_conformance",
        "list_name": list_name,
        "batch_size": 50,
        "poll_interval": 0,
    }
    return Target(config, secret, held, received, state, break_credentials, interrupt)


DESTINATION = Destination(
    "klaviyo_export",
    "klaviyo_export",
    "churn",
    klaviyo,
    valid_email,
    removes_exits=True,
    stand="klaviyo_stand",
)
