"""The Redshift jobs' DB URL: parsed into host, port and database, never with credentials."""

from __future__ import annotations

import json

import pytest

from lytics_provider.pipeline.db_url import DbUrl, parse_db_url, sql_connection


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "cl.abc123.us-east-2.redshift.amazonaws.com:5439/dev",
            DbUrl("cl.abc123.us-east-2.redshift.amazonaws.com", 5439, "dev"),
        ),
        ("jdbc:redshift://cl.example.com:5439/dev?ssl=true", DbUrl("cl.example.com", 5439, "dev")),
        ("postgresql://db.internal/analytics", DbUrl("db.internal", None, "analytics")),
        ("db.internal", DbUrl("db.internal", None, None)),
    ],
)
def test_db_url_forms(text: str, expected: DbUrl) -> None:
    assert parse_db_url(text) == expected


def test_a_db_url_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(ValueError, match="must not carry a user or password") as caught:
        parse_db_url("postgres://admin:s3cret@db.internal:5432/dev")
    assert "s3cret" not in str(caught.value)
    with pytest.raises(ValueError, match="use host:port/database"):
        parse_db_url("db internal:port")


def test_a_redshift_connection_opens_at_the_db_url(monkeypatch: pytest.MonkeyPatch) -> None:
    import redshift_connector

    spec = {
        "conn_type": "redshift",
        "host": "old.example.com",
        "port": 5439,
        "schema": "old",
        "login": "lytics",
        "password": "pw",
    }
    monkeypatch.setenv("AIRFLOW_CONN_RS_JOB", json.dumps(spec))
    seen: dict = {}
    monkeypatch.setattr(redshift_connector, "connect", lambda **kwargs: seen.update(kwargs) or "conn")
    assert sql_connection("rs_job", "new.example.com:5440/dev") == "conn"
    assert (seen["host"], seen["port"], seen["database"], seen["user"]) == (
        "new.example.com",
        5440,
        "dev",
        "lytics",
    )
