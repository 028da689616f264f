"""Brevo Export Users: contacts imported into a list, exits removed from it.

``held()`` is the emails of the list's members; ``received()`` every contact an accepted import or
removal call carried.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, count_bodies, valid_email


@pytest.fixture(scope="session")
def brevo_stand() -> Iterator[Any]:
    from lytics_sandbox.brevo import BrevoSandbox

    with BrevoSandbox() as sandbox:
        yield sandbox


def brevo(stands: Stands) -> Target:
    sandbox = stands.brevo_stand
    sandbox.reset()
    secret = f"xkeysib-{stands.name}"
    sandbox.api_key = secret
    stands.monkeypatch.setenv("AIRFLOW_CONN_BREVO_CONFORMANCE", json.dumps(sandbox.connection()))
    list_id = sandbox.data.add_list(f"Lytics {stands.name}")
    imported = count_bodies(sandbox, "import", lambda request: len(request.json()["jsonBody"]))
    removed = count_bodies(sandbox, "remove", lambda request: len(request.json()["emails"]))

    def held() -> set[str]:
        return sandbox.data.members(list_id)

    def state() -> dict[str, bytes]:
        return {
            "members": json.dumps(sorted(held())).encode(),
            "contacts": json.dumps(len(sandbox.data.contacts)).encode(),
        }

    def break_credentials() -> None:
        sandbox.api_key = f"{secret}-revoked"

    @contextmanager
    def interrupt() -> Iterator[None]:
        sandbox.faults.add(
            "5xx", status=503, path_regex=r"/v3/contacts/import", method="POST", after=1, times=None
        )
        try:
            yield
        finally:
            sandbox.faults.clear()

    config = {
        "type": "brevo_export",
        "audience": AUDIENCE,
        "brevo_conn_id": "brevo_conformance",
        "list": f"Lytics {stands.name}",
        "batch_size": 50,
    }
    return Target(
        config, secret, held, lambda: sum(imported) + sum(removed), state, break_credentials, interrupt
    )


DESTINATION = Destination(
    "brevo_export", "brevo_export", "churn", brevo, valid_email, removes_exits=True, stand="brevo_stand"
)
