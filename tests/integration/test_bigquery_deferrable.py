# ruff: noqa: F811 - pytest fixtures imported from conftest_warehouse and test_gcs_bigquery
"""Deferrable BigQuery load waits: the export defers on each running load job with the official
provider's ``BigQueryInsertJobTrigger``, whose ``run()`` polls the jobs through :class:`FakeBigQuery`
(GCS is the emulator); the task resumes in ``execute_complete``; a retry after a deferral
reattaches to the running load jobs instead of loading again."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("airflow.providers.google")

from airflow.providers.google.cloud.triggers.bigquery import BigQueryInsertJobTrigger
from airflow.sdk.exceptions import TaskDeferred

from lytics_provider.jobs.dag_builder import build_dags
from lytics_provider.operators.stream_position import EVENTS_POSITION_KEY
from lytics_provider.pipeline.bigquery_loads import BigQueryLoadError
from lytics_provider.pipeline.workarea import JobState
from lytics_provider.transfers.lytics_to_bigquery import (
    PENDING_LOAD_KEY,
    LyticsStreamToBigQueryOperator,
    LyticsToBigQueryOperator,
)
from tests.helpers import make_context
from tests.integration.conftest_warehouse import (  # noqa: F401 - fixtures
    gcs_bucket,
    gcs_emulator,
    install_stream_events,
    lytics_env,
    scanned_context,
)
from tests.integration.test_gcs_bigquery import FakeBigQuery, _blobs, google  # noqa: F401

TABLES = ("users_high_value", "users_high_value_segments", "users_high_value_scores")
FIELDS = ["_uid", "email", "score_engagement", "segments", "scores"]


def export(bucket: str, deferrable: bool = True) -> LyticsToBigQueryOperator:
    return LyticsToBigQueryOperator(
        task_id="deliver",
        job_id="job",
        dataset="lytics",
        gcs_bucket=bucket,
        fields=FIELDS,
        deferrable=deferrable,
        poll_interval=0.01,
    )


def events_of(trigger: BigQueryInsertJobTrigger) -> list[dict[str, Any]]:
    """Run the trigger as the triggerer would (after a serialize/deserialize round trip)."""
    path, kwargs = trigger.serialize()
    assert path == "airflow.providers.google.cloud.triggers.bigquery.BigQueryInsertJobTrigger"
    revived = BigQueryInsertJobTrigger(**kwargs)

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in revived.run()]

    return asyncio.run(collect())


def run_deferring(op: Any, context: dict[str, Any]) -> tuple[Any, list[TaskDeferred]]:
    """``execute``, then, while it defers, run the trigger and resume with its event."""
    deferrals: list[TaskDeferred] = []
    call = lambda: op.execute(context)  # noqa: E731
    while True:
        try:
            result = call()
        except TaskDeferred as deferred:
            deferrals.append(deferred)
            json.dumps(deferred.kwargs)  # stored in the metadata DB with the deferral
            assert deferred.method_name == "execute_complete"
            (event,) = events_of(deferred.trigger)
            call = lambda d=deferred, e=event: getattr(op, d.method_name)(context, e, **d.kwargs)  # noqa: E731
            continue
        json.dumps(result)
        return result, deferrals


def test_export_defers_while_the_load_jobs_run_and_resumes(lytics_env, google, monkeypatch) -> None:
    bq = FakeBigQuery(running_polls=2)
    bq.install(monkeypatch)
    context = scanned_context("high_value")
    report, deferrals = run_deferring(export(google), context)

    waited = [d.trigger.job_id for d in deferrals]
    assert waited == [f"lytics_job_{t}_20261123t000000z" for t in TABLES]  # one wait per running job
    assert all(d.trigger.poll_interval == 0.01 and d.trigger.cancel_on_kill is False for d in deferrals)
    assert set(bq.jobs) == set(waited) and len(bq.loads) == 3
    assert [u["email"] for u in bq.tables["lytics.users_high_value"]] == [
        m["email"] for m in lytics_env.expected_members("high_value")
    ]
    assert report["tables"]["users_high_value"] == 500 and report["rows"] == 500
    assert report["audience"]["slug"] == "high_value" and report["dry_run"] is False
    assert _blobs(google) == {}  # staged objects removed once every load finished

    # the same run without deferral reports the same
    worker = FakeBigQuery(running_polls=2)
    worker.install(monkeypatch)
    assert export(google, deferrable=False).execute(scanned_context("high_value")) == report


def test_a_retry_after_a_deferral_reattaches_to_the_running_loads(lytics_env, google, monkeypatch) -> None:
    bq = FakeBigQuery(running_polls=3)
    bq.install(monkeypatch)
    context = scanned_context("high_value")
    with pytest.raises(TaskDeferred) as first:
        export(google).execute(context)
    assert len(bq.loads) == 3  # every load submitted before the first wait
    # the deferred try is lost (triggerer gone, task failed); try 2 starts from scratch
    context["ti"].try_number = 2
    report, deferrals = run_deferring(export(google), context)
    assert len(bq.loads) == 3  # no second load: try 2 waited for try 1's jobs
    assert deferrals and deferrals[0].trigger.job_id == first.value.trigger.job_id
    assert set(bq.jobs) == {f"lytics_job_{t}_20261123t000000z" for t in TABLES}
    assert report["tables"]["users_high_value"] == 500
    assert _blobs(google) == {}


def test_a_failed_load_fails_the_task_and_the_retry_loads_again(lytics_env, google, monkeypatch) -> None:
    bq = FakeBigQuery(running_polls=1, fail=("users_high_value_segments",))
    bq.install(monkeypatch)
    context = scanned_context("high_value")
    with pytest.raises(BigQueryLoadError, match=r"lytics_job_users_high_value_segments_\w+ into "):
        run_deferring(export(google), context)
    bq.fail = ()
    context["ti"].try_number = 2
    report, _ = run_deferring(export(google), context)
    assert sorted(bq.jobs) == sorted(
        [f"lytics_job_{t}_20261123t000000z" for t in TABLES]
        + ["lytics_job_users_high_value_segments_20261123t000000z_try2"]
    )
    assert len(bq.loads) == 4  # only the failed table was loaded again
    assert report["tables"]["users_high_value_segments"] == len(bq.tables["lytics.users_high_value_segments"])


def test_an_error_event_fails_the_task_naming_the_job() -> None:
    op = LyticsToBigQueryOperator(task_id="deliver", job_id="job", dataset="lytics", gcs_bucket="b")
    loads = [{"job_id": "lytics_job_t_1", "table": "t", "staged": []}]
    with pytest.raises(BigQueryLoadError, match=r"lytics_job_t_1 into lytics\.t failed: Quota exceeded"):
        op.execute_complete(
            make_context(), {"status": "error", "message": "Quota exceeded"}, loads, {}, "lytics_job_t_1"
        )


def test_activity_export_defers_on_its_load_job(lytics_env, google, monkeypatch) -> None:
    bq = FakeBigQuery(running_polls=3)
    bq.install(monkeypatch)
    events = [{"email": f"u{i}@example.com", "n": i} for i in range(50)]
    install_stream_events(lytics_env, {"email_events": events})
    op = LyticsStreamToBigQueryOperator(
        task_id="export",
        job_id="job",
        stream="email_events",
        dataset="activity",
        gcs_bucket=google,
        deferrable=True,
        poll_interval=0.01,
    )
    context = make_context()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    assert JobState("job").get(EVENTS_POSITION_KEY) is None  # not committed while the job runs
    assert JobState("job").get(PENDING_LOAD_KEY)["load"]["job_id"] == deferred.value.trigger.job_id
    report, deferrals = run_deferring(op, context)  # the task retried: it waits for the same job
    assert len(deferrals) == 1 and len(bq.loads) == 1 and bq.tables["activity.events_email_events"] == events
    assert {k: report[k] for k in ("stream", "table", "rows")} == {
        "stream": "email_events",
        "table": "activity.events_email_events",
        "rows": 50,
    }
    # the position is committed when the task resumes after the load job, not before
    assert JobState("job").get(EVENTS_POSITION_KEY) == report["position"]
    assert JobState("job").get(PENDING_LOAD_KEY) is None
    assert _blobs(google) == {}


def test_job_config_deferrable_and_poll_interval_reach_the_operators(tmp_path: Path) -> None:
    (tmp_path / "bq.yaml").write_text(
        "type: bigquery_export\naudience: high_value\ndataset: lytics\ngcs_bucket: b\n"
        "deferrable: true\npoll_interval: 2\n"
    )
    (tmp_path / "bq_default.yaml").write_text(
        "type: bigquery_export\naudience: high_value\ndataset: lytics\ngcs_bucket: b\n"
    )
    (tmp_path / "bq_events.yaml").write_text(
        "type: bigquery_activity_export\nstream: email_events\ndataset: activity\ngcs_bucket: b\n"
        "deferrable: true\n"
    )
    dags = build_dags(tmp_path)
    deliver = dags["lytics_bq"].get_task("deliver")
    assert (deliver.deferrable, deliver.poll_interval) == (True, 2)
    default = dags["lytics_bq_default"].get_task("deliver")
    # unset: Airflow's [operators] default_deferrable (false here) and the official 4 s poll
    assert (default.deferrable, default.poll_interval) == (False, 4.0)
    assert dags["lytics_bq_events"].get_task("export").deferrable is True
