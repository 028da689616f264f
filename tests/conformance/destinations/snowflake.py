"""Snowflake export on fakesnow: the audience table swapped in whole each run."""

from __future__ import annotations

import json
from typing import Any

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, failing, uid


def snowflake(stands: Stands) -> Target:
    import fakesnow
    import snowflake.connector

    secret = f"sf-{stands.name}-pw"
    conn = {
        "conn_type": "snowflake",
        "login": "lytics",
        "password": secret,
        "schema": "EXPORTS",
        "extra": {"account": "xy12345", "database": "LYTICS", "warehouse": "WH", "role": "R"},
    }
    stands.monkeypatch.setenv("AIRFLOW_CONN_SNOWFLAKE_CONFORMANCE", json.dumps(conn))
    stands.cleanup.enter_context(fakesnow.patch())
    db = snowflake.connector.connect(database="LYTICS", schema="EXPORTS")
    stands.cleanup.callback(db.close)
    db.cursor().execute("CREATE DATABASE IF NOT EXISTS LYTICS")
    db.cursor().execute("CREATE SCHEMA IF NOT EXISTS LYTICS.EXPORTS")
    config = {
        "type": "snowflake_export",
        "audience": AUDIENCE,
        "snowflake_conn_id": "snowflake_conformance",
        "fields": ["_uid", "email", "first_name"],
        "swap_method": "rename",
    }

    def tables() -> list[str]:
        cur = db.cursor()
        cur.execute("SELECT table_name FROM LYTICS.INFORMATION_SCHEMA.TABLES WHERE table_schema = 'EXPORTS'")
        return sorted(r[0] for r in cur.fetchall())

    def rows(table: str) -> list[tuple[Any, ...]]:
        cur = db.cursor()
        cur.execute(f"SELECT * FROM LYTICS.EXPORTS.{table} ORDER BY 1")
        return cur.fetchall()

    def held() -> set[str]:
        return {row[0] for row in rows("USERS_CONFORMANCE")} if "USERS_CONFORMANCE" in tables() else set()

    def state() -> dict[str, bytes]:
        return {t: json.dumps(rows(t), default=str).encode() for t in tables()}

    def break_credentials() -> None:
        config["database"] = "NO_SUCH_DATABASE"

    def interrupt() -> Any:  # the connection drops after the load, before the swap
        from lytics_provider.transfers.lytics_to_snowflake import LyticsToSnowflakeOperator

        return failing(stands.monkeypatch, LyticsToSnowflakeOperator, "_swap")

    return Target(
        config,
        secret,
        held,
        lambda: sum(len(rows(t)) for t in tables()),
        state,
        break_credentials,
        interrupt,
    )


DESTINATION = Destination("snowflake_export", "snowflake_export", "replace", snowflake, uid, rejects=False)
