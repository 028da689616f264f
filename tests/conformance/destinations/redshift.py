"""Redshift export: S3 staging on moto, the table SQL on the local PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, failing, uid
from tests.conformance.destinations.s3 import s3


def redshift(stands: Stands) -> Target:
    """Redshift on its stand-in: S3 staging on moto, the table SQL on the local PostgreSQL (COPY from
    stdin, as PostgreSQL cannot read ``s3://``); skipped when no PostgreSQL accepts connections."""
    import pytest

    from tests.integration.conftest_warehouse import PG_DSN, pg_connect

    psycopg2 = pytest.importorskip("psycopg2")
    try:
        admin = psycopg2.connect(PG_DSN, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_DSN!r}: {exc}".strip())
    admin.autocommit = True
    schema = f"conf_{stands.name}"
    with admin.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {schema}")

    def drop() -> None:
        with admin.cursor() as cur:
            cur.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()

    stands.cleanup.callback(drop)
    staging = s3(stands)
    params = dict(item.split("=", 1) for item in PG_DSN.split())
    secret = f"rs-{stands.name}-pw"
    conn = {
        "conn_type": "postgres",
        "host": params.get("host", "127.0.0.1"),
        "port": int(params.get("port", 5432)),
        "login": params.get("user", "postgres"),
        "password": secret,
        "schema": params.get("dbname", "test"),
        "extra": {"options": f"-c search_path={schema}"},
    }
    stands.monkeypatch.setenv("AIRFLOW_CONN_REDSHIFT_CONFORMANCE", json.dumps(conn))
    config = {
        "type": "redshift_export",
        "audience": AUDIENCE,
        "redshift_conn_id": "redshift_conformance",
        "aws_conn_id": "aws_conformance",
        "s3_bucket": staging.config["bucket"],
        "schema_name": schema,
        "copy_method": "stdin",
        "fields": ["_uid", "email", "first_name"],
    }

    def tables() -> list[str]:
        with pg_connect(schema) as db, db.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (schema,))
            return [r[0] for r in cur.fetchall()]

    def rows(table: str) -> list[tuple[Any, ...]]:
        with pg_connect(schema) as db, db.cursor() as cur:
            cur.execute(f'SELECT * FROM "{schema}"."{table}" ORDER BY 1')
            return cur.fetchall()

    def held() -> set[str]:
        found = tables()
        return {row[0] for table in found for row in rows(table)} if found else set()

    def state() -> dict[str, bytes]:
        return {t: json.dumps(rows(t), default=str).encode() for t in tables()}

    def break_credentials() -> None:
        config["schema_name"] = f"{schema}_missing"

    def interrupt() -> Any:  # the connection drops after the COPY, before the swap
        from lytics_provider.transfers.lytics_to_redshift import LyticsToRedshiftOperator

        return failing(stands.monkeypatch, LyticsToRedshiftOperator, "_swap")

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
    "redshift_export", "redshift_export", "replace", redshift, uid, rejects=False, stand="moto_endpoint"
)
