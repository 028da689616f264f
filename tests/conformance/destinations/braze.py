"""Braze Export Audiences: membership attribute ``lytics_conformance`` through ``/users/track``.

Members are identified by email; an invalid email is refused by Braze (the stand-in, as Braze's
partial-success answer) and lands in rejects. Exits set the attribute false, for members the job
set true (``removes_exits``). ``received()`` counts the attribute objects Braze processed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, valid_email

ATTRIBUTE = f"lytics_{AUDIENCE}"


@pytest.fixture(scope="session")
def braze_stand() -> Iterator[Any]:
    from lytics_sandbox.braze import BrazeSandbox

    with BrazeSandbox() as sandbox:
        yield sandbox


def braze(stands: Stands) -> Target:
    sandbox = stands.braze_stand
    sandbox.reset()
    secret = f"braze-{stands.name}-rest-key"
    sandbox.api_keys = {secret}
    connection = sandbox.connection(secret)
    stands.monkeypatch.setenv("AIRFLOW_CONN_BRAZE_CONFORMANCE", json.dumps(connection))

    def held() -> set[str]:
        return {key.partition(":")[2] for key in sandbox.members(ATTRIBUTE)}

    def received() -> int:
        return int(sandbox.objects_processed)

    def state() -> dict[str, bytes]:
        return {"users": json.dumps(sandbox.users, sort_keys=True).encode()}

    def break_credentials() -> None:
        sandbox.api_keys = {f"{secret}-rotated"}

    @contextmanager
    def interrupt() -> Iterator[None]:
        sandbox.faults.add("5xx", status=503, path_regex=r"/users/track", method="POST", after=1, times=None)
        try:
            yield
        finally:
            sandbox.faults.clear()

    config = {
        "type": "braze_export",
        "audience": AUDIENCE,
        "braze_conn_id": "braze_conformance",
        "email": "email",
        "batch_size": 50,
    }
    return Target(config, secret, held, received, state, break_credentials, interrupt)


def braze_key(member: dict[str, Any]) -> str | None:
    email = valid_email(member)
    return email.lower() if email else None


DESTINATION = Destination(
    "braze_export",
    "braze_export",
    "churn",
    braze,
    braze_key,
    removes_exits=True,
    stand="braze_stand",
)
