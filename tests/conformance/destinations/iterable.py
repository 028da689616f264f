"""Iterable Export Audiences: members subscribed to a list by email, exits unsubscribed from it.

An invalid email is refused by Iterable (``invalidEmails``) and lands in rejects. Exits are
unsubscribed from the list, for members the job subscribed (``removes_exits``). ``received()``
counts the subscribers Iterable took (subscribed or unsubscribed).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, valid_email


@pytest.fixture(scope="session")
def iterable_stand() -> Iterator[Any]:
    from lytics_sandbox.iterable import IterableSandbox

    with IterableSandbox() as sandbox:
        yield sandbox


def iterable(stands: Stands) -> Target:
    sandbox = stands.iterable_stand
    sandbox.reset()
    secret = f"iterable-{stands.name}-api-key"
    sandbox.api_keys = {secret}
    stands.monkeypatch.setenv("AIRFLOW_CONN_ITERABLE_CONFORMANCE", json.dumps(sandbox.connection(secret)))
    list_name = f"Lytics {stands.name}"

    def held() -> set[str]:
        return {key.partition(":")[2] for key in sandbox.held(sandbox.list_by_name(list_name))}

    def received() -> int:
        return int(sandbox.subscribers_taken)

    def state() -> dict[str, bytes]:
        members = {str(k): sorted(v) for k, v in sandbox.members.items()}
        return {"lists": json.dumps([sandbox.lists, members], sort_keys=True, default=str).encode()}

    def break_credentials() -> None:
        sandbox.api_keys = {f"{secret}-rotated"}

    @contextmanager
    def interrupt() -> Iterator[None]:
        sandbox.faults.add("5xx", status=503, path_regex=r"/api/lists/subscribe", after=1, times=None)
        try:
            yield
        finally:
            sandbox.faults.clear()

    config = {
        "type": "iterable_export",
        "audience": AUDIENCE,
        "iterable_conn_id": "iterable_conformance",
        "list_name": list_name,
        "batch_size": 50,
    }
    return Target(config, secret, held, received, state, break_credentials, interrupt)


def iterable_key(member: dict[str, Any]) -> str | None:
    email = valid_email(member)
    return email.lower() if email else None


DESTINATION = Destination(
    "iterable_export",
    "iterable_export",
    "churn",
    iterable,
    iterable_key,
    removes_exits=True,
    stand="iterable_stand",
)
