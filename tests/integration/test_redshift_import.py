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
