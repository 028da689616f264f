"""Zendesk Export Users on the HTTPS stand-in: ``member_of_lytics_group`` set on enter, cleared on exit.

Semantic "churn": ``held()`` is the users whose field holds the audience name, ``received()`` every
user row Zendesk accepted in ``create_or_update_many`` (each send counts). Members are matched by
email, so those without a valid one are the rejects.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, valid_email


@pytest.fixture(scope="session")
def zendesk_stand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from lytics_sandbox.tls import local_tls
    from lytics_sandbox.zendesk import ZendeskSandbox

    tls = local_tls(tmp_path_factory.mktemp("zendesk_conformance_tls"))
    sandbox = ZendeskSandbox(incremental_per_minute=None)
    sandbox.ssl_context = tls.server_context
    sandbox.ca_file = tls.ca_file
    with sandbox:
        yield sandbox


def zendesk(stands: Stands) -> Target:
    from lytics_provider.transfers.lytics_to_zendesk import GROUP_FIELD

    sandbox = stands.zendesk_stand
    sandbox.users.clear()
    sandbox.writes.clear()
    secret = f"zd{stands.name}key"
    sandbox.token = secret
    connection = sandbox.connection(secret)
    stands.monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sandbox.ca_file))
    stands.monkeypatch.setenv("AIRFLOW_CONN_ZENDESK_CONFORMANCE", json.dumps(connection))

    def held() -> set[str]:
        values = {(u.get("user_fields") or {}).get(GROUP_FIELD) for u in sandbox.users.values()} - {None, ""}
        return {e for value in values for e in sandbox.members_with(GROUP_FIELD, value)}

    def received() -> int:
        return sum(sandbox.writes)

    def state() -> dict[str, bytes]:
        return {"users": json.dumps(sandbox.users, sort_keys=True, default=str).encode()}

    def break_credentials() -> None:
        stands.monkeypatch.setenv(
            "AIRFLOW_CONN_ZENDESK_CONFORMANCE", json.dumps({**connection, "password": "revoked"})
        )

    @contextmanager
    def interrupt() -> Iterator[None]:
        sandbox.faults.add(
            "5xx", status=503, path_regex=r"create_or_update_many", method="POST", after=1, times=None
        )
        try:
            yield
        finally:
            sandbox.faults.clear()

    config = {"type": "zendesk_export", "audience": AUDIENCE, "zendesk_conn_id": "zendesk_conformance"}
    return Target(config, secret, held, received, state, break_credentials, interrupt)


def _email_key(member: dict[str, Any]) -> str | None:
    email = valid_email(member)
    return email.lower() if email and "." in email.partition("@")[2] else None


DESTINATION = Destination(
    "zendesk_export",
    "zendesk_export",
    "churn",
    zendesk,
    _email_key,
    removes_exits=True,
    stand="zendesk_stand",
)
