# ruff: noqa: F811 - pytest fixtures imported from conftest_warehouse
"""Snowflake Import Audiences and Activity Data on fakesnow: ordered batches and the watermark."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from lytics_provider.pipeline.http import ServiceError
from lytics_provider.transfers.sql_to_lytics import SqlTableToLyticsOperator
from lytics_sandbox.faults import FaultRule
from tests.helpers import make_context, run_task
from tests.integration.conftest_warehouse import lytics_env  # noqa: F401 - fixture

fakesnow = pytest.importorskip("fakesnow")
T0 = datetime(2026, 3, 1, 12, 0, 0)


@pytest.fixture
def snowflake(monkeypatch):
    import snowflake.connector

    monkeypatch.setenv(
        "AIRFLOW_CONN_SNOWFLAKE_DEFAULT",
        json.dumps(
            {
                "conn_type": "snowflake",
                "login": "lytics",
                "password": "secret",
                "schema": "SALES",
                "extra": {"account": "xy12345", "database": "CRM", "warehouse": "WH", "role": "R"},
            }
        ),
    )
    with fakesnow.patch():
        conn = snowflake.connector.connect(database="CRM", schema="SALES")
        cur = conn.cursor()
        cur.execute("CREATE DATABASE IF NOT EXISTS CRM")
        cur.execute("CREATE SCHEMA IF NOT EXISTS CRM.SALES")
        cur.execute("CREATE TABLE CRM.SALES.ORDERS (ORDER_ID INT, EMAIL VARCHAR, MODIFIED TIMESTAMP_NTZ)")
        yield conn
        conn.close()


def _insert(conn, rows) -> None:
    conn.cursor().executemany("INSERT INTO CRM.SALES.ORDERS VALUES (%s, %s, %s)", rows)


def _op(**kwargs) -> SqlTableToLyticsOperator:
    options = {
        "job_id": "sf_import",
        "modified_timestamp_field": "MODIFIED",
        "key_fields": ["ORDER_ID"],
        "batch_size": 4,
        **kwargs,
    }
    return SqlTableToLyticsOperator(
        task_id="import",
        source="CRM.SALES.ORDERS",
        conn_id="snowflake_default",
        dialect="snowflake",
        stream="snowflake_orders",
        **options,
    )


def test_snowflake_import_resumes_after_a_failure_without_loss_or_duplicates(lytics_env, snowflake):
    rows = [(i, f"o{i}@example.com", T0 + timedelta(seconds=i // 3)) for i in range(30)]
    _insert(snowflake, rows[::-1])
    lytics_env.faults.add(FaultRule("5xx", path_regex="/collect/json/snowflake_orders", after=3, times=None))
    with pytest.raises(ServiceError):
        run_task(_op(), make_context())
    lytics_env.faults.clear()
    report = run_task(_op(), make_context())
    got = [r["order_id"] for r in lytics_env.collected("snowflake_orders")]
    assert got == list(range(30))  # ordered by (MODIFIED, ORDER_ID), each once
    assert report["already_imported"] == 3  # orders 9-11 share the watermark second: skipped by key
    assert lytics_env.collected("snowflake_orders")[0]["modified"] == T0.isoformat()

    _insert(
        snowflake, [(99, "late@example.com", rows[-1][2]), (100, "new@example.com", T0 + timedelta(days=1))]
    )
    run_task(_op(), make_context(run_id="scheduled__2"))
    got = [r["order_id"] for r in lytics_env.collected("snowflake_orders")]
    assert got == [*range(30), 99, 100]


def test_snowflake_full_reload_sends_only_new_and_changed_rows(lytics_env, snowflake):
    _insert(snowflake, [(i, f"o{i}@example.com", None) for i in range(10)])

    def reload_op() -> SqlTableToLyticsOperator:
        return _op(job_id="sf_reload", modified_timestamp_field=None, full_reload=True)

    lytics_env.faults.add(FaultRule("5xx", path_regex="/collect/json/snowflake_orders", after=1, times=None))
    with pytest.raises(ServiceError):
        run_task(reload_op(), make_context())
    lytics_env.faults.clear()
    run_task(reload_op(), make_context())
    got = [r["order_id"] for r in lytics_env.collected("snowflake_orders")]
    assert got == list(range(10))  # ordered by ORDER_ID, each once through the failed run

    snowflake.cursor().execute("UPDATE CRM.SALES.ORDERS SET EMAIL = 'new@example.com' WHERE ORDER_ID = 7")
    snowflake.cursor().execute("DELETE FROM CRM.SALES.ORDERS WHERE ORDER_ID = 2")
    report = run_task(reload_op(), make_context(run_id="scheduled__2"))
    assert lytics_env.collected("snowflake_orders")[10] == {
        "order_id": 7,
        "email": "new@example.com",
        "modified": None,
    }
    assert report["rows"] == 1 and report["rows_gone"] == 1 and report["rows_known"] == 9
