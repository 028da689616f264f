# ruff: noqa: F811 - pytest fixtures imported from conftest_warehouse
"""Redshift Import Table over its PostgreSQL connection, against a real PostgreSQL on loopback."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from lytics_provider.pipeline.http import ServiceError
from lytics_provider.pipeline.workarea import JobState
from lytics_provider.transfers.sql_to_lytics import SqlTableToLyticsOperator
from lytics_sandbox.faults import FaultRule
from tests.helpers import make_context, run_task
from tests.integration.conftest_warehouse import lytics_env, pg_connect, pg_schema  # noqa: F401

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _fill(schema: str, rows: list[tuple[int, str, datetime | None]]) -> None:
    with pg_connect(schema) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS events "
            "(id INT, email TEXT, updated_at TIMESTAMPTZ, amount NUMERIC(10,2))"
        )
        cur.executemany(
            "INSERT INTO events VALUES (%s, %s, %s, %s)", [(i, e, ts, i * 1.5) for i, e, ts in rows]
        )


def _op(**kwargs) -> SqlTableToLyticsOperator:
    return SqlTableToLyticsOperator(
        task_id="import",
        job_id="rs_import",
        source="events",
        modified_timestamp_field="updated_at",
        conn_id="postgres_default",
        batch_size=7,
        **kwargs,
    )


def _ids(sandbox, stream: str = "redshift_events") -> list[int]:
    return [r["id"] for r in sandbox.collected(stream)]


def _rows(n: int, start: int = 0, groups: int = 5) -> list[tuple[int, str, datetime]]:
    # every `groups` rows share one timestamp, so equal timestamps straddle the batch boundaries
    return [(i, f"u{i}@example.com", T0 + timedelta(minutes=i // groups)) for i in range(start, start + n)]


def test_import_is_oldest_first_and_exactly_once_through_a_failed_run(lytics_env, pg_schema):
    rows = _rows(60)
    _fill(pg_schema, list(reversed(rows)))
    lytics_env.faults.add(FaultRule("5xx", path_regex="/collect/json/redshift_events", after=4, times=None))
    with pytest.raises(ServiceError):
        run_task(_op(), make_context())  # Lytics keeps failing after four batches: the task fails
    lytics_env.faults.clear()
    assert len(_ids(lytics_env)) == 28  # four batches of 7 acknowledged before the failure
    assert JobState("rs_import").get("watermark")["ts"] == (T0 + timedelta(minutes=5)).isoformat()

    report = run_task(_op(), make_context())  # the retry
    ids = _ids(lytics_env)
    assert sorted(ids) == list(range(60)) and len(ids) == 60  # no row lost or sent twice
    stamps = [r["updated_at"] for r in lytics_env.collected("redshift_events")]
    assert stamps == sorted(stamps)  # oldest first
    assert report["rows"] == 32 and report["already_imported"] == 3
    first = next(r for r in lytics_env.collected("redshift_events") if r["id"] == 3)
    assert first == {"id": 3, "email": "u3@example.com", "updated_at": T0.isoformat(), "amount": 4.5}
    query = lytics_env.collect_requests[-1]["query"]
    assert query["timestamp_field"] == "updated_at"


def test_keep_updated_takes_new_rows_and_late_rows_with_the_watermark_timestamp(lytics_env, pg_schema):
    _fill(pg_schema, _rows(12))
    run_task(_op(), make_context())
    last_ts = T0 + timedelta(minutes=2)  # rows 10 and 11
    _fill(pg_schema, [(100, "late@example.com", last_ts), (101, "new@example.com", last_ts + timedelta(1))])
    report = run_task(_op(), make_context(run_id="scheduled__2"))
    assert sorted(_ids(lytics_env)) == [*range(12), 100, 101]
    assert report["already_imported"] == 2 and report["rows"] == 2
    again = run_task(_op(), make_context(run_id="scheduled__3"))
    assert again["rows"] == 0 and len(_ids(lytics_env)) == 14


def test_events_since_and_missing_timestamps_are_reported(lytics_env, pg_schema):
    _fill(pg_schema, [*_rows(10), (50, "no-ts@example.com", None)])
    op = _op(events_since=(T0 + timedelta(minutes=1)).isoformat(), stream="crm_events")
    report = run_task(op, make_context())
    assert sorted(_ids(lytics_env, "crm_events")) == list(range(5, 10))
    assert report["missing_timestamp"] == 1


def test_dry_run_sends_nothing_and_keeps_no_watermark(lytics_env, pg_schema):
    _fill(pg_schema, _rows(10))
    report = run_task(_op(), make_context(params={"dry_run": True}))
    assert report["rows"] == 10 and lytics_env.collected("redshift_events") == []
    assert JobState("rs_import").get("watermark") is None


def test_bad_config_names_the_field() -> None:
    with pytest.raises(ValueError, match="events_since '2026-01-01' has no UTC offset"):
        run_task(_op(events_since="2026-01-01"), make_context())
    with pytest.raises(ValueError, match="modified_timestamp_field 'updated at' is not a valid name"):
        SqlTableToLyticsOperator(
            task_id="i", job_id="j", source="t", modified_timestamp_field="updated at", conn_id="c"
        )
    _ = json


# -- full reload: a table without a modified-timestamp column -----------------------------------
def _contacts(schema: str, sql: str, rows: list[tuple[int, str, int]] | None = None) -> None:
    with pg_connect(schema) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS contacts (id INT, email TEXT, score INT)")
        if rows:
            cur.executemany(sql, rows)
        else:
            cur.execute(sql)


def _reload_op(**kwargs) -> SqlTableToLyticsOperator:
    return SqlTableToLyticsOperator(
        task_id="import",
        job_id="rs_reload",
        source="contacts",
        full_reload=True,
        conn_id="postgres_default",
        batch_size=7,
        **kwargs,
    )


def _sent(sandbox) -> list[tuple[int, int]]:
    return [(r["id"], r["score"]) for r in sandbox.collected("redshift_contacts")]


def test_full_reload_sends_each_row_once_through_a_failed_run(lytics_env, pg_schema):
    insert = "INSERT INTO contacts VALUES (%s, %s, %s)"
    _contacts(pg_schema, insert, [(i, f"u{i}@example.com", 0) for i in range(30)])
    lytics_env.faults.add(FaultRule("5xx", path_regex="/collect/json/redshift_contacts", after=2, times=None))
    with pytest.raises(ServiceError):
        run_task(_reload_op(key_fields=["id"]), make_context())
    lytics_env.faults.clear()
    assert len(_sent(lytics_env)) == 14  # two batches of 7 acknowledged before the failure

    report = run_task(_reload_op(key_fields=["id"]), make_context())  # the retry
    assert sorted(_sent(lytics_env)) == [(i, 0) for i in range(30)]  # each row once, none lost
    assert report["rows"] == 16 and report["unchanged"] == 14 and report["rows_known"] == 30
    assert "timestamp_field" not in lytics_env.collect_requests[-1]["query"]

    _contacts(pg_schema, "UPDATE contacts SET score = 5 WHERE id IN (3, 17)")
    _contacts(pg_schema, "DELETE FROM contacts WHERE id = 29")
    _contacts(pg_schema, insert, [(40, "new@example.com", 1)])
    report = run_task(_reload_op(key_fields=["id"]), make_context(run_id="scheduled__2"))
    assert _sent(lytics_env)[30:] == [(3, 5), (17, 5), (40, 1)]  # ordered by key_fields
    assert report["rows"] == 3 and report["unchanged"] == 27
    assert report["rows_gone"] == 1 and report["rows_known"] == 30

    again = run_task(_reload_op(key_fields=["id"]), make_context(run_id="scheduled__3"))
    assert again["rows"] == 0 and again["rows_read"] == 30 and len(_sent(lytics_env)) == 33


def test_full_reload_without_key_fields_resends_a_row_that_comes_back(lytics_env, pg_schema):
    _contacts(
        pg_schema, "INSERT INTO contacts VALUES (%s, %s, %s)", [(1, "a@example.com", 1), (2, "b@x.com", 2)]
    )
    run_task(_reload_op(), make_context())
    dry = run_task(_reload_op(), make_context(run_id="dry", params={"dry_run": True}))
    assert dry["rows"] == 0 and dry["unchanged"] == 2
    _contacts(pg_schema, "UPDATE contacts SET score = 9 WHERE id = 1")
    changed = run_task(_reload_op(), make_context(run_id="scheduled__2"))
    _contacts(pg_schema, "UPDATE contacts SET score = 1 WHERE id = 1")
    back = run_task(_reload_op(), make_context(run_id="scheduled__3"))
    assert changed["rows_gone"] == 1 and back["rows"] == 1  # the old version was forgotten
    assert _sent(lytics_env) == [(1, 1), (2, 2), (1, 9), (1, 1)]


def test_full_reload_dry_run_sends_and_remembers_nothing(lytics_env, pg_schema):
    _contacts(
        pg_schema, "INSERT INTO contacts VALUES (%s, %s, %s)", [(i, "x@example.com", i) for i in range(9)]
    )
    dry = run_task(_reload_op(), make_context(params={"dry_run": True}))
    assert dry["rows"] == 9 and _sent(lytics_env) == []
    real = run_task(_reload_op(), make_context(run_id="scheduled__2"))
    assert real["rows"] == 9 and len(_sent(lytics_env)) == 9


def test_full_reload_and_a_watermark_are_exclusive() -> None:
    with pytest.raises(ValueError, match="set full_reload=True for a table without one"):
        SqlTableToLyticsOperator(task_id="i", job_id="j", source="t", conn_id="c")
    with pytest.raises(ValueError, match="not both"):
        SqlTableToLyticsOperator(
            task_id="i", job_id="j", source="t", conn_id="c", modified_timestamp_field="m", full_reload=True
        )


def test_db_url_in_the_job_replaces_the_connection_endpoint(lytics_env, pg_schema, monkeypatch, tmp_path):
    import os

    from lytics_provider.jobs.dag_builder import build_dag
    from lytics_provider.jobs.loader import load_job_files

    spec = json.loads(os.environ["AIRFLOW_CONN_REDSHIFT_DEFAULT"])
    db_url = f"{spec['host']}:{spec['port']}/{spec['schema']}"
    spec.update(host="no-such-cluster.invalid", schema="nodb")  # the authorization left blank-ish
    monkeypatch.setenv("AIRFLOW_CONN_REDSHIFT_DEFAULT", json.dumps(spec))
    path = tmp_path / "redshift_import_contacts.yaml"
    path.write_text(f"type: redshift_import\nsource: contacts\nfull_reload: true\ndb_url: {db_url}\n")
    loaded, errors = load_job_files([path])
    assert errors == []
    op = build_dag(loaded[0]).get_task("import")
    assert op.db_url == db_url and op.conn_id == "redshift_default"
    _contacts(pg_schema, "INSERT INTO contacts VALUES (%s, %s, %s)", [(1, "a@example.com", 1)])
    run_task(op, make_context())
    assert _sent(lytics_env) == [(1, 1)]
    with pytest.raises(ValueError, match="db_url is for Redshift/PostgreSQL connections"):
        _reload_op(dialect="snowflake", stream="s", db_url=db_url)
