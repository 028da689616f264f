"""Salesforce Marketing Cloud: a new data extension filled with the audience, and Trigger Journey.

Data extension: ``held()`` is the subscriber keys of the rows, ``received()`` every row an accepted
rowset call carried; exits keep their rows (``removes_exits`` False). Trigger Journey is an event
destination sending enters only: ``held()`` is the contacts that got an entry event,
``received()`` the accepted events.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, count_bodies, valid_email


@pytest.fixture(scope="session")
def sfmc_stand() -> Iterator[Any]:
    from lytics_sandbox.sfmc import SfmcSandbox

    with SfmcSandbox() as sandbox:
        yield sandbox


def connect(stands: Stands) -> tuple[Any, str, Callable[[], None]]:
    sandbox = stands.sfmc_stand
    sandbox.reset()
    secret = f"sfmc-secret-{stands.name}"
    sandbox.client_secret = secret
    stands.monkeypatch.setenv("AIRFLOW_CONN_SFMC_CONFORMANCE", json.dumps(sandbox.connection()))

    def break_credentials() -> None:
        sandbox.client_secret = f"{secret}-rotated"
        sandbox.tokens.clear()

    return sandbox, secret, break_credentials


def job_config(job_type: str, **options: Any) -> dict[str, Any]:
    """A job of ``job_type`` on the conformance audience and connection, mapping ``first_name``."""
    return {
        "type": job_type,
        "audience": AUDIENCE,
        "sfmc_conn_id": "sfmc_conformance",
        "field_mapping": {"first_name": "FirstName"},
        **options,
    }


def interrupter(sandbox: Any, path: str, after: int = 1) -> Callable[[], Any]:
    """Delivery fails once ``after`` POSTs to ``path`` were answered."""

    @contextmanager
    def interrupt() -> Iterator[None]:
        sandbox.faults.add("5xx", status=503, path_regex=path, method="POST", after=after, times=None)
        try:
            yield
        finally:
            sandbox.faults.clear()

    return interrupt


def data_extension(stands: Stands) -> Target:
    sandbox, secret, break_credentials = connect(stands)
    key = f"Lytics_{stands.name}"
    rows = count_bodies(sandbox, "rowset", lambda request: len(request.json() or []))

    def held() -> set[str]:
        de = sandbox.data.data_extension(key)
        return {k[0] for k in de.rows} if de else set()

    def state() -> dict[str, bytes]:
        de = sandbox.data.data_extension(key)
        return {"rows": json.dumps(sorted(map(list, de.rows)) if de else []).encode()}

    config = job_config("sfmc_export_new_data_extension", data_extension_key=key, batch_size=50)
    return Target(
        config, secret, held, lambda: sum(rows), state, break_credentials, interrupter(sandbox, r"/hub/v1/.*")
    )


def trigger_journey(stands: Stands) -> Target:
    sandbox, secret, break_credentials = connect(stands)
    definition = f"APIEvent-{stands.name}"
    sandbox.data.event_definitions.add(definition)

    def events() -> list[dict[str, Any]]:
        return [e for e in sandbox.data.journey_events if e["EventDefinitionKey"] == definition]

    def state() -> dict[str, bytes]:
        return {"events": json.dumps(sorted(e["ContactKey"] for e in events())).encode()}

    config = job_config("sfmc_trigger_journey", event_definition_key=definition)
    return Target(
        config,
        secret,
        lambda: {e["ContactKey"] for e in events()},
        lambda: len(events()),
        state,
        break_credentials,
        interrupter(sandbox, r"/interaction/v1/events"),
    )


DESTINATIONS = [
    Destination(
        "sfmc_export_new_data_extension",
        "sfmc_export_new_data_extension",
        "churn",
        data_extension,
        valid_email,
        stand="sfmc_stand",
    ),
    Destination(
        "sfmc_trigger_journey",
        "sfmc_trigger_journey",
        "churn",
        trigger_journey,
        valid_email,
        stand="sfmc_stand",
    ),
]
