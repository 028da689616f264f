"""Stand-ins for the conformance suite, each started once per session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lytics_provider.pipeline import http
from tests.conformance.destinations import AUDIENCE, Stands, destination_modules
from tests.helpers import lytics_conn
from tests.integration.conftest_warehouse import gcs_emulator, moto_endpoint  # noqa: F401 - session fixtures

AUDIENCE_SIZE = 200


def conformance_account(invalid_email_rate: float = 0.05) -> Any:
    from lytics_sandbox.synth import SyntheticAccount

    return SyntheticAccount(
        seed=11, audiences={"all_users": 400, AUDIENCE: AUDIENCE_SIZE}, invalid_email_rate=invalid_email_rate
    )


@pytest.fixture(scope="session")
def lytics_stand() -> Iterator[Any]:
    from lytics_sandbox.lytics import LyticsSandbox

    with LyticsSandbox(conformance_account()) as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def sftp_stand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from lytics_sandbox.sftp import SFTPSandbox

    server = SFTPSandbox(tmp_path_factory.mktemp("sftp"))
    host, port = server.start()
    server.host, server.port = host, port
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dotdigital_stand() -> Iterator[Any]:
    from lytics_sandbox.dotdigital import DotdigitalSandbox

    with DotdigitalSandbox() as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def icontact_stand() -> Iterator[Any]:
    from lytics_sandbox.icontact import IContactData, IContactSandbox

    data = IContactData(contacts={}, lists={}, subscriptions={}, messages={}, activity={})
    with IContactSandbox(data) as sandbox:
        yield sandbox


def _collect_stand_fixtures() -> None:
    """Make the session fixtures that destination modules define (their stand-ins) visible here."""
    from _pytest.fixtures import getfixturemarker

    for module in destination_modules():
        for name, value in vars(module).items():
            if getfixturemarker(value) is not None and name not in globals():
                globals()[name] = value


_collect_stand_fixtures()


@pytest.fixture
def stands(
    request: pytest.FixtureRequest, lytics_stand: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> Iterator[Stands]:
    """The session's stand-ins, the Lytics account reset, this test's data directory and connections."""
    lytics_stand.account = conformance_account()
    lytics_stand.faults.clear()
    lytics_stand.reset_counters()
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics_stand.base_url))
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(http.RetryPolicy, "backoff", lambda self, attempt: 0.0)
    destination = request.getfixturevalue("destination")
    found = Stands(lytics=lytics_stand, monkeypatch=monkeypatch)
    for fixture in destination.stands:
        found.servers[fixture] = request.getfixturevalue(fixture)
    saved = []
    for server in found.servers.values():
        if isinstance(server, str):
            continue
        for name in ("_password", "password", "credentials"):
            if hasattr(server, name):
                saved.append((server, name, getattr(server, name)))
    try:
        with found.cleanup:
            yield found
    finally:
        for server, name, old in saved:
            setattr(server, name, old)
        for server in found.servers.values():
            if hasattr(server, "faults"):
                server.faults.clear()
