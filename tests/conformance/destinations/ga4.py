"""GA4 Measurement Protocol Audience Export: ``enter_{slug}`` / ``exit_{slug}`` events to /mp/collect.

Semantic "churn" for an event destination: ``held()`` is the clients whose latest event of the
audience is ``enter_conformance``, ``received()`` every event the stream accepted (GA4 does not
de-duplicate, so each counts). The client id is the member's ``_uid``, which every member has, so
the conformance audience has no bad rows here; rule-breaking members are covered in
``tests/integration/test_ga4.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, uid


@pytest.fixture(scope="session")
def ga4_stand() -> Iterator[Any]:
    from lytics_sandbox.ga4 import GA4Sandbox

    with GA4Sandbox() as sandbox:
        yield sandbox


def ga4(stands: Stands) -> Target:
    sandbox = stands.ga4_stand
    secret = f"mp{stands.name}secret"
    measurement_id = f"G-{stands.name.upper()}"
    stream = sandbox.add_stream(measurement_id, secret)
    connection = sandbox.connection(secret)
    stands.monkeypatch.setenv("AIRFLOW_CONN_GA4_CONFORMANCE", json.dumps(connection))

    def held() -> set[str]:
        return sandbox.entered(measurement_id, AUDIENCE)

    def received() -> int:
        return len(stream.events())

    def state() -> dict[str, bytes]:
        return {"events": json.dumps(stream.events(), sort_keys=True).encode()}

    def break_credentials() -> None:
        broken = {k: v for k, v in connection.items() if k != "password"}
        stands.monkeypatch.setenv("AIRFLOW_CONN_GA4_CONFORMANCE", json.dumps(broken))

    @contextmanager
    def interrupt() -> Iterator[None]:
        sandbox.faults.add("5xx", status=503, path_regex=r"/mp/collect", method="POST", after=5, times=None)
        try:
            yield
        finally:
            sandbox.faults.clear()

    config = {
        "type": "ga4_audience_export",
        "audience": AUDIENCE,
        "ga4_conn_id": "ga4_conformance",
        "measurement_id": measurement_id,
        "client_id": "_uid",
        "user_id_field": "user_id",
        "export_scalar_fields": ["city", "country"],
    }
    return Target(config, secret, held, received, state, break_credentials, interrupt)


DESTINATION = Destination(
    "ga4_audience_export",
    "ga4_audience_export",
    "churn",
    ga4,
    uid,
    removes_exits=True,
    rejects=False,
    stand="ga4_stand",
)
