# ruff: noqa: F811 - pytest fixtures imported from conftest_warehouse
"""BigQuery Import Activity Data (``bigquery_import``): ordered pages, a failed run, the watermark.

Real: the job config (a ``bigquery_import`` YAML file loaded and built into its DAG), the
``SqlTableToLyticsOperator`` it creates, Airflow's ``BigQueryHook.get_client`` and the
``google.cloud.bigquery.Client`` it returns, the query parameters (``ScalarQueryParameter``),
the result rows (``google.cloud.bigquery.table.Row``), the Lytics sandbox with its fault
injection, and the watermark in the job's state directory.

Stand-ins: Google auth (anonymous credentials, project ``test-project``) and BigQuery's query
execution. No BigQuery emulator installs here, so ``bigquery.Client.query`` is replaced by
:class:`DuckDBQuery`, which runs the operator's SQL on an in-memory DuckDB database holding a
real ``analytics.app_events`` table (TIMESTAMPTZ in UTC, NUMERIC, BIGINT, VARCHAR). Only two
things are translated: the backquoted table reference (`` `analytics.app_events` `` becomes
``analytics.app_events``) and the named parameter (``@since`` becomes ``$since``, bound to the
``TIMESTAMP`` parameter's value). The ``WHERE ... >= @since`` and ``ORDER BY event_time,
event_id`` clauses run unchanged in DuckDB, and the result is served in pages of the
``page_size`` the operator asks for, fetched from the DuckDB cursor page by page.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.jobs.dag_builder import build_dag
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.pipeline.http import ServiceError
from lytics_provider.pipeline.workarea import JobState
from lytics_provider.transfers.sql_to_lytics import SqlTableToLyticsOperator
from lytics_sandbox.faults import FaultRule
from tests.helpers import make_context, run_task
from tests.integration.conftest_warehouse import lytics_env  # noqa: F401 - fixture

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("airflow.providers.google")

T0 = datetime(2026, 3, 1, tzinfo=UTC)
STREAM = "app_events"
JOB_YAML = """\
type: bigquery_import
source: analytics.app_events
modified_timestamp_field: event_time
stream: app_events
key_fields: [event_id]
batch_size: 5
keep_updated: true
frequency: every 4 hours
"""


class DuckDBQuery:
    """Stand-in for ``bigquery.Client.query`` (see the module docstring)."""

    def __init__(self) -> None:
        self.db = duckdb.connect(":memory:")
        self.db.execute("SET TimeZone = 'UTC'")
        self.db.execute("CREATE SCHEMA analytics")
        self.db.execute(
            "CREATE TABLE analytics.app_events "
            "(event_id BIGINT, email VARCHAR, event_time TIMESTAMPTZ, amount NUMERIC(10, 2))"
        )
        self.queries: list[tuple[str, dict[str, Any]]] = []
        self.pages_served: list[int] = []

    def insert(self, rows: list[tuple[int, str, datetime | None]]) -> None:
        self.db.executemany(
            "INSERT INTO analytics.app_events VALUES (?, ?, ?, ?)",
            [(i, email, ts, Decimal(i) / 4) for i, email, ts in rows],
        )

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from airflow.providers.google.common.hooks.base_google import GoogleBaseHook
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        monkeypatch.setenv(
            "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT",
            json.dumps({"conn_type": "google_cloud_platform", "extra": {"project": "test-project"}}),
        )
        monkeypatch.setattr(
            GoogleBaseHook,
            "get_credentials_and_project_id",
            lambda self: (AnonymousCredentials(), "test-project"),
        )
        fake = self

        def query(client: bigquery.Client, sql: str, job_config: bigquery.QueryJobConfig | None = None, **_):
            assert isinstance(client, bigquery.Client) and client.project == "test-project"
            params: dict[str, Any] = {}
            for param in (job_config.query_parameters if job_config else None) or []:
                assert isinstance(param, bigquery.ScalarQueryParameter) and param.type_ == "TIMESTAMP"
                params[param.name] = param.value
            fake.queries.append((sql, params))
            duck_sql = sql.replace("`analytics.app_events`", "analytics.app_events")
            for name in params:
                duck_sql = duck_sql.replace(f"@{name}", f"${name}")
            assert "`" not in duck_sql and "@" not in duck_sql
            return _QueryJob(fake, duck_sql, params)

        monkeypatch.setattr(bigquery.Client, "query", query)


class _QueryJob:
    def __init__(self, fake: DuckDBQuery, sql: str, params: dict[str, Any]) -> None:
        self.fake = fake
        self.cursor = fake.db.cursor()
        self.cursor.execute(sql, params or None)

    def result(self, page_size: int | None = None) -> _Rows:
        return _Rows(self, page_size or 1000)


class _Rows:
    def __init__(self, job: _QueryJob, page_size: int) -> None:
        self.job = job
        self.page_size = page_size

    @property
    def pages(self):
        from google.cloud.bigquery.table import Row

        cursor = self.job.cursor
        index = {d[0]: n for n, d in enumerate(cursor.description)}
        while rows := cursor.fetchmany(self.page_size):
            self.job.fake.pages_served.append(len(rows))
            yield [Row(values, index) for values in rows]


@pytest.fixture
def bigquery(lytics_env, monkeypatch) -> DuckDBQuery:
    fake = DuckDBQuery()
    fake.install(monkeypatch)
    yield fake
    fake.db.close()


@pytest.fixture
def job_operator(tmp_path) -> SqlTableToLyticsOperator:
    path = tmp_path / "jobs" / "bigquery_import_app_events.yaml"
    path.parent.mkdir()
    path.write_text(JOB_YAML)
    loaded, errors = load_job_files([path])
    assert errors == [] and loaded[0].config.type == "bigquery_import"
    op = build_dag(loaded[0]).get_task("import")
    assert isinstance(op, SqlTableToLyticsOperator) and op.dialect == "bigquery"
    assert op.conn_id == "google_cloud_default" and op.key_fields == ["event_id"] and op.batch_size == 5
    return op


def _rows(n: int, start: int = 0) -> list[tuple[int, str, datetime]]:
    # four rows share each minute, so equal timestamps straddle the pages of five
    return [(i, f"u{i}@example.com", T0 + timedelta(minutes=i // 4)) for i in range(start, start + n)]


def _ids(sandbox) -> list[int]:
    return [r["event_id"] for r in sandbox.collected(STREAM)]


def _watch_acknowledgements(monkeypatch, job_id: str) -> list[tuple[Any, Any, bool]]:
    """Per collect call: the watermark before it, when Lytics answered, and whether it acknowledged."""
    calls: list[tuple[Any, Any, bool]] = []
    real = LyticsHook.collect_json

    def collect_json(hook, *args, **kwargs):
        before = JobState(job_id).get("watermark")
        try:
            result = real(hook, *args, **kwargs)
        except Exception:
            calls.append((before, JobState(job_id).get("watermark"), False))
            raise
        calls.append((before, JobState(job_id).get("watermark"), True))
        return result

    monkeypatch.setattr(LyticsHook, "collect_json", collect_json)
    return calls


def test_bigquery_import_round_trips_through_a_failed_run_and_a_late_row(
    lytics_env, bigquery, job_operator, monkeypatch
):
    op = job_operator
    rows = _rows(40)
    shuffled = [*rows, (90, "no-ts@example.com", None)]
    random.Random(7).shuffle(shuffled)
    bigquery.insert(shuffled)
    calls = _watch_acknowledgements(monkeypatch, op.job_id)

    lytics_env.faults.add(FaultRule("5xx", path_regex=f"/collect/json/{STREAM}", after=3, times=None))
    with pytest.raises(ServiceError):
        run_task(op, make_context())  # Lytics fails on the fourth batch and keeps failing
    lytics_env.faults.clear()

    sql, params = bigquery.queries[0]
    assert (
        sql
        == "SELECT * FROM `analytics.app_events` WHERE event_time IS NOT NULL ORDER BY event_time, event_id"
    )
    assert params == {}
    assert _ids(lytics_env) == list(range(15))  # three acknowledged pages of five, oldest first
    mark = JobState(op.job_id).get("watermark")
    by_id = {i: {"event_id": i, "email": e, "event_time": ts, "amount": Decimal(i) / 4} for i, e, ts in rows}
    assert mark == {
        "ts": (T0 + timedelta(minutes=3)).isoformat(),  # rows 12-15 share it; 15 was not acknowledged
        "keys": sorted(op.key_of(by_id[i]) for i in (12, 13, 14)),
    }

    # the watermark is committed only after Lytics acknowledged a batch: it has not moved while a
    # collect call is in flight, and each call starts from the previous acknowledged batch's mark
    def mark_of(last: int) -> dict[str, Any]:
        ts = by_id[last]["event_time"]
        keys = [i for i in range(last - 4, last + 1) if by_id[i]["event_time"] == ts]
        return {"ts": ts.isoformat(), "keys": sorted(op.key_of(by_id[i]) for i in keys)}

    assert [ok for *_, ok in calls] == [True, True, True, False]
    assert [before for before, _, _ in calls] == [None, mark_of(4), mark_of(9), mark_of(14)]
    assert all(before == during for before, during, _ in calls)
    assert mark == mark_of(14)

    report = run_task(op, make_context())  # the retry
    sql, params = bigquery.queries[1]
    assert (
        sql == "SELECT * FROM `analytics.app_events` WHERE event_time >= @since ORDER BY event_time, event_id"
    )
    assert params == {"since": T0 + timedelta(minutes=3)}
    assert _ids(lytics_env) == list(range(40))  # every row exactly once, oldest first
    assert report["already_imported"] == 3  # 12-14 skipped by key; 15, same timestamp, sent
    assert report["rows"] == 25 and report["missing_timestamp"] is None
    assert bigquery.pages_served[-6:] == [5, 5, 5, 5, 5, 3]  # 12..39 in pages of batch_size
    stamps = [datetime.fromisoformat(r["event_time"]) for r in lytics_env.collected(STREAM)]
    assert stamps == sorted(stamps)
    assert lytics_env.collected(STREAM)[1] == {
        "event_id": 1,
        "email": "u1@example.com",
        "event_time": T0.isoformat(),
        "amount": 0.25,
    }
    assert lytics_env.collect_requests[-1]["query"]["timestamp_field"] == "event_time"
    last = T0 + timedelta(minutes=9)  # rows 36-39
    assert JobState(op.job_id).get("watermark")["ts"] == last.isoformat()

    # keep updated: a late row carrying the watermark's timestamp, and a newer one
    bigquery.insert([(100, "late@example.com", last), (101, "new@example.com", last + timedelta(days=1))])
    report = run_task(op, make_context(run_id="scheduled__2"))
    assert bigquery.queries[-1][1] == {"since": last}
    assert _ids(lytics_env) == [*range(40), 100, 101]
    assert report["rows"] == 2 and report["already_imported"] == 4

    again = run_task(op, make_context(run_id="scheduled__3"))
    assert again["rows"] == 0 and again["already_imported"] == 1
    assert len(_ids(lytics_env)) == 42


RELOAD_YAML = """\
type: bigquery_import
source: analytics.app_events
full_reload: true
stream: app_events
key_fields: [event_id]
batch_size: 5
"""


def test_bigquery_full_reload_sends_new_and_changed_rows_once(lytics_env, bigquery, tmp_path):
    path = tmp_path / "bigquery_import_reload.yaml"
    path.write_text(RELOAD_YAML)
    loaded, errors = load_job_files([path])
    assert errors == []
    op = build_dag(loaded[0]).get_task("import")
    assert op.full_reload and op.modified_timestamp_field is None
    bigquery.insert([(i, f"u{i}@example.com", None) for i in range(12)])
    lytics_env.faults.add(FaultRule("5xx", path_regex=f"/collect/json/{STREAM}", after=1, times=None))
    with pytest.raises(ServiceError):
        run_task(op, make_context())
    lytics_env.faults.clear()
    assert bigquery.queries[0] == ("SELECT * FROM `analytics.app_events` ORDER BY event_id", {})
    run_task(op, make_context())  # the retry sends the rest
    assert _ids(lytics_env) == list(range(12))
    assert "timestamp_field" not in lytics_env.collect_requests[-1]["query"]

    bigquery.db.execute("UPDATE analytics.app_events SET email = 'moved@example.com' WHERE event_id = 4")
    bigquery.insert([(20, "new@example.com", None)])
    report = run_task(op, make_context(run_id="scheduled__2"))
    assert _ids(lytics_env)[12:] == [4, 20] and report["unchanged"] == 11
    assert lytics_env.collected(STREAM)[12]["email"] == "moved@example.com"
