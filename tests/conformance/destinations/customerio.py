"""Customer.io Export Users: each member created or updated as a person (identified by email).

Exits send nothing (the documented job only creates and updates people), so ``removes_exits`` is
off. Members with an invalid email land in rejects. ``received()`` counts the identifies
Customer.io accepted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, valid_email


@pytest.fixture(scope="session")
def customerio_stand() -> Iterator[Any]:
    from lytics_sandbox.customerio import CustomerIOSandbox

    with CustomerIOSandbox() as sandbox:
        yield sandbox


def customerio(stands: Stands) -> Target:
    sandbox = stands.customerio_stand
    sandbox.reset()
    secret = f"cio-{stands.name}-track-key"
    sandbox.site_id, sandbox.api_key = f"site-{stands.name}", secret
    stands.monkeypatch.setenv("AIRFLOW_CONN_CUSTOMERIO_CONFORMANCE", json.dumps(sandbox.connection()))

    def held() -> set[str]:
        return {key.partition(":")[2] for key in sandbox.people}

    def received() -> int:
        return int(sandbox.identifies)

    def state() -> dict[str, bytes]:
        return {"people": json.dumps(sandbox.people, sort_keys=True, default=str).encode()}

    def break_credentials() -> None:
        sandbox.api_key = f"{secret}-rotated"

    @contextmanager
    def interrupt() -> Iterator[None]:
        sandbox.faults.add("5xx", status=503, path_regex=r"/api/v2/batch", method="POST", after=1, times=None)
        try:
            yield
        finally:
            sandbox.faults.clear()

    config = {
        "type": "customerio_export",
        "audience": AUDIENCE,
        "customerio_conn_id": "customerio_conformance",
        "batch_size": 50,
    }
    return Target(config, secret, held, received, state, break_credentials, interrupt)


def customerio_key(member: dict[str, Any]) -> str | None:
    email = valid_email(member)
    return email.lower() if email else None


DESTINATION = Destination(
    "customerio_export",
    "customerio_export",
    "churn",
    customerio,
    customerio_key,
    removes_exits=False,
    stand="customerio_stand",
)
