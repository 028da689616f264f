"""Segment Export: enters and exits as Identify calls (trait ``audience_{audience_name}``) to /v1/batch.

Semantic "churn" for an event destination: ``held()`` is the users whose latest Identify set the
audience trait true, ``received()`` the distinct events the source accepted (Segment
de-duplicates on ``messageId``; every accepted event counts once). Members need only a ``_uid``
(the ``userId``), so the conformance audience has no bad rows here; oversized events are the
rejects, covered in ``tests/integration/test_segment.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, uid


@pytest.fixture(scope="session")
def segment_stand() -> Iterator[Any]:
    from lytics_sandbox.segment import SegmentSandbox

    with SegmentSandbox() as sandbox:
        yield sandbox


def segment(stands: Stands) -> Target:
    sandbox = stands.segment_stand
    secret = f"wk{stands.name}segmentkey"
    source = sandbox.add_source(secret)
    connection = sandbox.connection(secret)
    stands.monkeypatch.setenv("AIRFLOW_CONN_SEGMENT_CONFORMANCE", json.dumps(connection))
    trait = f"audience_{AUDIENCE.title()}"

    def held() -> set[str]:
        return sandbox.members_in(secret, trait)

    def received() -> int:
        return len(source.events)

    def state() -> dict[str, bytes]:
        return {"events": json.dumps(sorted(source.events)).encode()}

    def break_credentials() -> None:
        stands.monkeypatch.setenv("AIRFLOW_CONN_SEGMENT_CONFORMANCE", json.dumps({**connection, "extra": {}}))

    @contextmanager
    def interrupt() -> Iterator[None]:
        sandbox.faults.add("5xx", status=503, path_regex=r"/v1/batch", method="POST", after=1, times=None)
        try:
            yield
        finally:
            sandbox.faults.clear()

    config = {
        "type": "segment_export",
        "audience": AUDIENCE,
        "segment_conn_id": "segment_conformance",
        "call_type": "identify",
        "batch_size": 50,
    }
    return Target(config, secret, held, received, state, break_credentials, interrupt)


DESTINATION = Destination(
    "segment_export",
    "segment_export",
    "churn",
    segment,
    uid,
    removes_exits=True,
    rejects=False,
    stand="segment_stand",
)
