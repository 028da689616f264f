"""Databricks export on the statement-API stand-in (DuckDB), staging on moto: the table replaced each run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, failing, uid
from tests.conformance.destinations.s3 import s3


@pytest.fixture(scope="session")
def databricks_stand(moto_endpoint: str) -> Iterator[Any]:
    from lytics_sandbox.databricks import DatabricksSandbox

    sandbox = DatabricksSandbox(s3_endpoint=moto_endpoint)
    sandbox.start()
    yield sandbox
    sandbox.stop()


def databricks(stands: Stands) -> Target:
    from lytics_provider.hooks.databricks import DatabricksStatementHook
    from lytics_provider.transfers.lytics_to_databricks import LyticsToDatabricksOperator

    stand = stands.databricks_stand
    database = f"conf_{stands.name}"
    stand.create_schema("lytics", database)
    staging = s3(stands)
    secret = f"dapi-{stands.name}"
    stand.token = secret
    conn = stand.connection(secret)
    stands.monkeypatch.setenv("AIRFLOW_CONN_DATABRICKS_CONFORMANCE", json.dumps(conn))
    init = DatabricksStatementHook.__init__

    def fast(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("poll_interval", 0.0)
        kwargs.setdefault("retry_limit", 1)
        init(self, *args, **kwargs)

    stands.monkeypatch.setattr(DatabricksStatementHook, "__init__", fast)
    config = {
        "type": "databricks_export",
        "audience": AUDIENCE,
        "databricks_conn_id": "databricks_conformance",
        "aws_conn_id": "aws_conformance",
        "s3_bucket": staging.config["bucket"],
        "catalog": "lytics",
        "database": database,
        "fields": ["_uid", "email", "first_name"],
    }

    def tables() -> list[str]:
        return stand.tables("lytics", database)

    def rows(table: str) -> list[tuple[Any, ...]]:
        return stand.query(f'SELECT * FROM lytics."{database}"."{table}" ORDER BY 1')

    def held() -> set[str]:
        return {row[0] for row in rows("users_conformance")} if "users_conformance" in tables() else set()

    def state() -> dict[str, bytes]:
        return {t: json.dumps(rows(t), default=str).encode() for t in tables()}

    def break_credentials() -> None:
        conn["password"] = "dapi-revoked"
        stands.monkeypatch.setenv("AIRFLOW_CONN_DATABRICKS_CONFORMANCE", json.dumps(conn))

    def interrupt() -> Any:  # the connection drops after the load, before the swap
        return failing(stands.monkeypatch, LyticsToDatabricksOperator, "_swap")

    return Target(
        config,
        secret,
        held,
        lambda: sum(len(rows(t)) for t in tables()),
        state,
        break_credentials,
        interrupt,
    )


DESTINATION = Destination(
    "databricks_export",
    "databricks_export",
    "replace",
    databricks,
    uid,
    rejects=False,
    stand=("moto_endpoint", "databricks_stand"),
)
