"""Marketo Export Audiences: leads kept in a static list, exits removed from it.

``held()`` is the emails of the list's members; ``received()`` every lead an accepted list-add or
list-remove call carried.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, count_bodies, valid_email


@pytest.fixture(scope="session")
def marketo_stand() -> Iterator[Any]:
    from lytics_sandbox.marketo import MarketoSandbox

    with MarketoSandbox() as sandbox:
        yield sandbox


def marketo(stands: Stands) -> Target:
    sandbox = stands.marketo_stand
    sandbox.reset()
    secret = f"mkto-secret-{stands.name}"
    sandbox.client_secret = secret
    stands.monkeypatch.setenv("AIRFLOW_CONN_MARKETO_CONFORMANCE", json.dumps(sandbox.connection()))
    list_id = sandbox.data.add_list(f"Lytics {stands.name}")
    added = count_bodies(sandbox, "list_add", lambda request: len(request.json()["input"]))
    removed = count_bodies(sandbox, "list_remove", lambda request: len(request.json()["input"]))

    def held() -> set[str]:
        return sandbox.data.list_emails(list_id)

    def state() -> dict[str, bytes]:
        return {
            "members": json.dumps(sorted(held())).encode(),
            "leads": json.dumps(len(sandbox.data.leads)).encode(),
        }

    def break_credentials() -> None:
        sandbox.client_secret = f"{secret}-rotated"

    @contextmanager
    def interrupt() -> Iterator[None]:
        sandbox.faults.add(
            "5xx", status=503, path_regex=r"/rest/v1/lists/.*", method="POST", after=1, times=None
        )
        try:
            yield
        finally:
            sandbox.faults.clear()

    config = {
        "type": "marketo_export",
        "audience": AUDIENCE,
        "marketo_conn_id": "marketo_conformance",
        "static_list": f"Lytics {stands.name}",
        "batch_size": 50,
    }
    return Target(
        config, secret, held, lambda: sum(added) + sum(removed), state, break_credentials, interrupt
    )


DESTINATION = Destination(
    "marketo_export",
    "marketo_export",
    "churn",
    marketo,
    valid_email,
    removes_exits=True,
    stand="marketo_stand",
)
