# ruff: noqa: F811 - pytest fixtures imported from conftest_warehouse
"""Snowflake Bulk Export on fakesnow (DuckDB-backed Snowflake SQL): PUT, COPY INTO, swap.

fakesnow runs the operator's real statements (CREATE STAGE, PUT to an internal stage,
CREATE OR REPLACE TABLE, COPY INTO with FORCE/PURGE, INFORMATION_SCHEMA lookups, RENAME).
It does not parse ``ALTER TABLE ... SWAP WITH``, so these tests use ``swap_method="rename"``;
the SWAP statement itself is only checked as text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from lytics_provider.transfers.lytics_to_snowflake import LyticsToSnowflakeOperator
from tests.helpers import run_task
from tests.integration.conftest_warehouse import lytics_env, scanned_context  # noqa: F401 - fixtures

fakesnow = pytest.importorskip("fakesnow")

FIELDS = ["_uid", "email", "score_engagement", "scores", "segments", "last_active_ts"]


@pytest.fixture
def snowflake(monkeypatch) -> Iterator[object]:
    """fakesnow patched in, a SNOWFLAKE_DEFAULT connection and a LYTICS.EXPORTS schema."""
    import snowflake.connector

    monkeypatch.setenv(
        "AIRFLOW_CONN_SNOWFLAKE_DEFAULT",
        json.dumps(
            {
                "conn_type": "snowflake",
                "login": "lytics",
                "password": "secret",
                "schema": "EXPORTS",
                "extra": {"account": "xy12345", "database": "LYTICS", "warehouse": "WH", "role": "R"},
            }
        ),
    )
    with fakesnow.patch():
        conn = snowflake.connector.connect(database="LYTICS", schema="EXPORTS")
        conn.cursor().execute("CREATE DATABASE IF NOT EXISTS LYTICS")
        conn.cursor().execute("CREATE SCHEMA IF NOT EXISTS LYTICS.EXPORTS")
        yield conn
        conn.close()


def _op(cls: type = LyticsToSnowflakeOperator, **kwargs) -> LyticsToSnowflakeOperator:
    return cls(task_id="deliver", job_id="job", fields=FIELDS, swap_method="rename", **kwargs)


def _rows(conn, table: str = "USERS_HIGH_VALUE") -> list[tuple]:
    cur = conn.cursor()
    cur.execute(f"SELECT _UID, EMAIL, SCORE_ENGAGEMENT, SCORES FROM LYTICS.EXPORTS.{table} ORDER BY 1")
    return [(u, e, s, json.loads(m) if isinstance(m, str) else m) for u, e, s, m in cur.fetchall()]


def _expected(sandbox) -> list[tuple]:
    return sorted(
        (m["_uid"], m["email"], m["score_engagement"], m["scores"])
        for m in sandbox.expected_members("high_value")
    )


def _tables(conn) -> list[str]:
    cur = conn.cursor()
    cur.execute("SELECT table_name FROM LYTICS.INFORMATION_SCHEMA.TABLES WHERE table_schema = 'EXPORTS'")
    return sorted(r[0] for r in cur.fetchall())


class _ReadDuringLoad(LyticsToSnowflakeOperator):
    seen: list

    def _load_temp(self, cur, temp, columns, stage_path):
        super()._load_temp(cur, temp, columns, stage_path)
        import snowflake.connector

        other = snowflake.connector.connect(database="LYTICS", schema="EXPORTS")
        self.seen.append((_rows(other), _rows(other, temp)))
        other.close()


class _FailAfterLoadOnce(LyticsToSnowflakeOperator):
    failures = 1

    def _swap(self, cur, temp, table):
        if type(self).failures:
            type(self).failures -= 1
            raise ConnectionError("worker lost before the swap")
        super()._swap(cur, temp, table)


def test_export_loads_every_member_into_users_slug(lytics_env, snowflake) -> None:
    report = run_task(_op(), scanned_context("high_value"))
    assert report["table"] == "USERS_HIGH_VALUE" and report["rows"] == 500
    assert _rows(snowflake) == _expected(lytics_env)
    assert _tables(snowflake) == ["USERS_HIGH_VALUE"]
    cur = snowflake.cursor()
    cur.execute(
        "SELECT column_name, data_type FROM LYTICS.INFORMATION_SCHEMA.COLUMNS "
        "WHERE table_name = 'USERS_HIGH_VALUE' ORDER BY ordinal_position"
    )
    types = dict(cur.fetchall())
    assert list(types) == [f.upper() for f in FIELDS]
    assert types["SCORE_ENGAGEMENT"] == "NUMBER" and types["LAST_ACTIVE_TS"].startswith("TIMESTAMP")


def test_main_table_readable_during_load_and_retry_after_a_failed_swap(lytics_env, snowflake) -> None:
    run_task(_op(), scanned_context("high_value", day=22))
    before = _rows(snowflake)
    lytics_env.set_version("high_value", 1)
    context = scanned_context("high_value", day=23)
    _FailAfterLoadOnce.failures = 1
    with pytest.raises(ConnectionError):
        run_task(_op(_FailAfterLoadOnce), context)
    assert _rows(snowflake) == before

    op = _op(_ReadDuringLoad)
    op.seen = []
    run_task(op, context)
    ((main_during, temp_during),) = op.seen
    assert main_during == before  # a second connection reads the old table while the temp one is loaded
    assert sorted(temp_during) == _expected(lytics_env)  # the retry reloaded its file once (FORCE), no dups
    assert _rows(snowflake) == _expected(lytics_env) != before
    assert _tables(snowflake) == ["USERS_HIGH_VALUE"]


def test_different_columns_get_a_suffixed_table(lytics_env, snowflake) -> None:
    run_task(_op(), scanned_context("high_value", day=22))
    op = LyticsToSnowflakeOperator(
        task_id="deliver", job_id="job", fields=["_uid", "email"], swap_method="rename"
    )
    report = run_task(op, scanned_context("high_value", day=23))
    assert report["table"] == "USERS_HIGH_VALUE1"
    assert _tables(snowflake) == ["USERS_HIGH_VALUE", "USERS_HIGH_VALUE1"]


def test_swap_statement_is_atomic_swap_with() -> None:
    executed: list[str] = []

    class Cursor:
        def execute(self, sql, params=None):
            executed.append(sql)

        def fetchall(self):
            return [("_UID",)]

    op = LyticsToSnowflakeOperator(task_id="d", job_id="j", database="DB", schema_name="S")
    op._swap(Cursor(), "USERS_X_1", "USERS_X")
    assert executed[1:] == [
        'ALTER TABLE "DB"."S"."USERS_X" SWAP WITH "DB"."S"."USERS_X_1"',
        'DROP TABLE "DB"."S"."USERS_X_1"',
    ]
