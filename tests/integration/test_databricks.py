# ruff: noqa: F811 - pytest fixtures imported from conftest_warehouse
"""Databricks Export Audience and Import Table against the statement-API stand-in (DuckDB + moto).

The stand-in (``lytics_sandbox/databricks.py``) follows the SQL Statement Execution API reference,
https://docs.databricks.com/api/workspace/statementexecution, and runs the statements the
operators emit on DuckDB; ``COPY INTO ... FROM 's3://...'`` reads the staged object from moto.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.databricks import DatabricksStatementHook, warehouse_id_of
from lytics_provider.integrations.catalog import read_integration, todo_entries
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.pipeline.http import ServiceError
from lytics_provider.transfers.lytics_to_databricks import LyticsToDatabricksOperator
from lytics_provider.transfers.sql_to_lytics import SqlTableToLyticsOperator
from lytics_sandbox.databricks import DatabricksSandbox
from lytics_sandbox.faults import FaultRule
from tests.helpers import make_context, run_task
from tests.integration.conftest_warehouse import (  # noqa: F401 - fixtures
    lytics_env,
    moto_endpoint,
    s3_bucket,
    s3_client,
    scanned_context,
)

REPO = Path(__file__).resolve().parents[2]
DECLARATION = REPO / "lytics_provider" / "integrations" / "databricks.yaml"
FIELDS = ["_uid", "email", "score_engagement", "scores", "segments", "last_active_ts"]
T0 = datetime(2026, 3, 1, 12, 0, 0)


@pytest.fixture(scope="session")
def databricks_stand(moto_endpoint: str) -> Iterator[DatabricksSandbox]:
    sandbox = DatabricksSandbox(s3_endpoint=moto_endpoint, chunk_rows=7)
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def warehouse(databricks_stand: DatabricksSandbox, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A fresh ``catalog.database`` and the ``databricks_default`` connection."""
    catalog, database = "lytics", f"t_{uuid.uuid4().hex[:8]}"
    databricks_stand.create_schema(catalog, database)
    monkeypatch.setenv("AIRFLOW_CONN_DATABRICKS_DEFAULT", json.dumps(databricks_stand.connection()))
    monkeypatch.setattr(DatabricksStatementHook, "__init__", _fast_init)
    return catalog, database


_original_init = DatabricksStatementHook.__init__


def _fast_init(self, *args, **kwargs) -> None:  # no sleeps between polls in tests
    kwargs.setdefault("poll_interval", 0.0)
    kwargs.setdefault("retry_limit", 1)
    _original_init(self, *args, **kwargs)


def _export(bucket: str, database: str, **kwargs) -> LyticsToDatabricksOperator:
    return LyticsToDatabricksOperator(
        task_id="deliver",
        job_id="job",
        fields=FIELDS,
        catalog="lytics",
        database=database,
        s3_bucket=bucket,
        **kwargs,
    )


def _rows(stand: DatabricksSandbox, database: str, table: str = "users_high_value") -> list[tuple]:
    got = stand.query(
        f'SELECT _uid, email, score_engagement, scores FROM lytics."{database}"."{table}" ORDER BY 1'
    )
    return [(u, e, s, json.loads(m) if m is not None else None) for u, e, s, m in got]


def _expected(sandbox) -> list[tuple]:
    return sorted(
        (m["_uid"], m["email"], m["score_engagement"], m["scores"])
        for m in sandbox.expected_members("high_value")
    )


# -- registration and connection -------------------------------------------------------------------


def test_registration_is_complete() -> None:
    assert todo_entries(read_integration(DECLARATION)) == []


def test_example_configs_load() -> None:
    paths = sorted((REPO / "include" / "jobs").glob("databricks_*.yaml"))
    jobs, errors = load_job_files(paths)
    assert errors == []
    assert sorted(job.config.type for job in jobs) == ["databricks_export", "databricks_import"]


def test_warehouse_id_comes_from_the_http_path() -> None:
    assert warehouse_id_of("/sql/1.0/warehouses/abc123") == "abc123"
    with pytest.raises(ValueError, match="HTTP Path"):
        warehouse_id_of("/sql/protocolv1/o/0/0123-456789-abc")


def test_test_button_runs_select_1_and_reports_a_wrong_token(
    databricks_stand, warehouse, monkeypatch
) -> None:
    assert DatabricksStatementHook().test_connection() == (True, "Connection successfully tested")
    monkeypatch.setenv(
        "AIRFLOW_CONN_DATABRICKS_DEFAULT", json.dumps(databricks_stand.connection("dapi-wrong"))
    )
    ok, message = DatabricksStatementHook().test_connection()
    assert not ok and "401" in message and "dapi-wrong" not in message


def test_results_are_read_chunk_by_chunk(databricks_stand, warehouse) -> None:
    hook = DatabricksStatementHook()
    result = hook.run("SELECT range AS n FROM range(20)")
    chunks = list(hook.rows(result))
    assert [len(c) for c in chunks] == [7, 7, 6]
    assert [int(row[0]) for chunk in chunks for row in chunk] == list(range(20))
    assert result.total_rows == 20 and result.columns == ["n"]


def test_a_missing_table_fails_the_task_without_retries(databricks_stand, warehouse) -> None:
    with pytest.raises(AirflowFailException, match="BAD_REQUEST"):
        DatabricksStatementHook().run("SELECT * FROM main.nowhere.nothing")


# -- export ----------------------------------------------------------------------------------------


def test_export_copies_into_a_placeholder_with_inferred_schema_then_replaces(
    lytics_env, databricks_stand, warehouse, s3_bucket, moto_endpoint
) -> None:
    _, database = warehouse
    databricks_stand.executed.clear()
    report = run_task(_export(s3_bucket, database), scanned_context("high_value"))
    assert report["rows"] == 500 and report["table"] == f"`lytics`.`{database}`.`users_high_value`"
    assert _rows(databricks_stand, database) == _expected(lytics_env)
    assert databricks_stand.tables("lytics", database) == ["users_high_value"]  # placeholder dropped
    types = dict(
        databricks_stand.query(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? "
            "AND table_name = 'users_high_value'",
            [database],
        )
    )
    assert list(types) == FIELDS  # columns in export order, types inferred from the file
    assert types["scores"] == "VARCHAR" and types["last_active_ts"].startswith("TIMESTAMP")
    statements = [s.split()[0:2] for s in databricks_stand.executed]
    assert statements[:3] == [["DROP", "TABLE"], ["CREATE", "TABLE"], ["COPY", "INTO"]]
    copy = next(s for s in databricks_stand.executed if s.startswith("COPY INTO"))
    assert "'inferSchema' = 'true'" in copy and "FILEFORMAT = CSV" in copy
    assert "testing" not in " ".join(databricks_stand.executed)  # no key in SQL
    assert s3_client(moto_endpoint).list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0


def test_export_into_the_default_catalog_main(lytics_env, databricks_stand, warehouse, s3_bucket) -> None:
    _, database = warehouse
    databricks_stand.create_schema("main", database)
    operator = _export(s3_bucket, database)
    operator.catalog = "main"
    report = run_task(operator, scanned_context("high_value"))
    assert report["rows"] == 500 and report["table"] == f"`main`.`{database}`.`users_high_value`"
    assert databricks_stand.tables("main", database) == ["users_high_value"]
    assert databricks_stand.tables("lytics", database) == []


def test_a_failure_before_the_swap_leaves_the_table_and_the_retry_loads_once(
    lytics_env, databricks_stand, warehouse, s3_bucket, monkeypatch
) -> None:
    _, database = warehouse
    run_task(_export(s3_bucket, database), scanned_context("high_value", day=22))
    before = _rows(databricks_stand, database)
    lytics_env.set_version("high_value", 1)
    context = scanned_context("high_value", day=23)
    original = LyticsToDatabricksOperator._swap

    def lost(self, hook, placeholder, table):
        raise ConnectionError("worker lost before the swap")

    monkeypatch.setattr(LyticsToDatabricksOperator, "_swap", lost)
    with pytest.raises(ConnectionError):
        run_task(_export(s3_bucket, database), context)
    assert _rows(databricks_stand, database) == before
    monkeypatch.setattr(LyticsToDatabricksOperator, "_swap", original)
    run_task(_export(s3_bucket, database), context)
    assert _rows(databricks_stand, database) == _expected(lytics_env) != before
    assert databricks_stand.tables("lytics", database) == ["users_high_value"]


def test_dry_run_plans_without_statements(lytics_env, databricks_stand, warehouse, s3_bucket) -> None:
    _, database = warehouse
    databricks_stand.executed.clear()
    report = run_task(_export(s3_bucket, database), scanned_context("high_value", dry_run=True))
    assert report["dry_run"] and report["columns"]["scores"] == "STRING"
    assert databricks_stand.executed == []


def test_a_missing_catalog_fails_fast(lytics_env, databricks_stand, warehouse, s3_bucket) -> None:
    op = LyticsToDatabricksOperator(
        task_id="deliver", job_id="job", fields=FIELDS, catalog="nope", database="nope", s3_bucket=s3_bucket
    )
    with pytest.raises(AirflowFailException):
        run_task(op, scanned_context("high_value"))


# -- import ----------------------------------------------------------------------------------------


def _import(database: str, **kwargs) -> SqlTableToLyticsOperator:
    return SqlTableToLyticsOperator(
        task_id="import",
        job_id=f"dbx_import_{database}",
        source=f"lytics.{database}.orders",
        modified_timestamp_field="modified_at",
        conn_id="databricks_default",
        dialect="databricks",
        stream="databricks_orders",
        key_fields=["order_id"],
        batch_size=4,
        **kwargs,
    )


def test_import_resumes_after_a_failure_without_loss_or_duplicates(
    lytics_env, databricks_stand, warehouse
) -> None:
    _, database = warehouse
    table = f'lytics."{database}".orders'
    databricks_stand.query(
        f"CREATE TABLE {table} (order_id BIGINT, email VARCHAR, total DOUBLE, modified_at TIMESTAMP)"
    )
    rows = [(i, f"o{i}@example.com", i * 1.5, T0 + timedelta(seconds=i // 3)) for i in range(30)]
    for row in reversed(rows):
        databricks_stand.query(f"INSERT INTO {table} VALUES (?, ?, ?, ?)", list(row))
    databricks_stand.query(f"INSERT INTO {table} VALUES (500, 'no-ts@example.com', 1.0, NULL)")
    lytics_env.faults.add(FaultRule("5xx", path_regex="/collect/json/databricks_orders", after=3, times=None))
    with pytest.raises(ServiceError):
        run_task(_import(database), make_context())
    lytics_env.faults.clear()
    report = run_task(_import(database), make_context())
    got = lytics_env.collected("databricks_orders")
    assert [r["order_id"] for r in got] == list(range(30))  # ordered, each once, typed
    assert report["already_imported"] == 3 and report["missing_timestamp"] == 1
    assert got[0]["modified_at"] == T0.replace(tzinfo=UTC).isoformat() and got[1]["total"] == 1.5

    databricks_stand.query(f"INSERT INTO {table} VALUES (99, 'late@example.com', 2.0, ?)", [rows[-1][3]])
    databricks_stand.query(
        f"INSERT INTO {table} VALUES (100, 'new@example.com', 2.0, ?)", [T0 + timedelta(days=1)]
    )
    run_task(_import(database), make_context(run_id="scheduled__2"))
    assert [r["order_id"] for r in lytics_env.collected("databricks_orders")] == [*range(30), 99, 100]
