# ruff: noqa: F811 - pytest fixtures imported from conftest_warehouse and test_gcs_bigquery
"""Export Audience Changes to BigQuery: the job's scan -> deliver -> report runs end to end, the
CSV batches staged on the GCS emulator and appended by load jobs on :class:`FakeBigQuery`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("airflow.providers.google")

from lytics_provider.jobs.loader import load_job_files
from tests.conformance.runner import JobRun
from tests.integration.conftest_warehouse import gcs_bucket, gcs_emulator, lytics_env  # noqa: F401
from tests.integration.test_gcs_bigquery import FakeBigQuery, _blobs, google  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
TABLE = "marketing.audience_changes"


def changes(bucket: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "bigquery_export_audience_changes",
        "audience": "high_value",
        "dataset": "marketing",
        "gcs_bucket": bucket,
        **extra,
    }


def test_enters_then_exits_are_appended_once(lytics_env, google, monkeypatch) -> None:
    bq = FakeBigQuery()
    bq.install(monkeypatch)
    report = JobRun(changes(google), job_id="bq_changes").run()["deliver"]
    members = {m["email"] for m in lytics_env.expected_members("high_value")}
    rows = bq.tables[TABLE]
    assert len(rows) == len(members) == 500 and {r["email"] for r in rows} == members
    assert {(r["segment_slug"], r["exit"]) for r in rows} == {("high_value", "false")}
    assert rows[0]["timestamp"].endswith("Z") and "marketing" in bq.datasets
    assert bq.loads[0]["writeDisposition"] == "WRITE_APPEND"
    assert [f["name"] for f in bq.loads[0]["schema"]["fields"]] == [
        "email",
        "segment_slug",
        "timestamp",
        "exit",
    ]
    assert report["table"] == "audience_changes" and _blobs(google) == {}

    lytics_env.set_churn("high_value", exits=4, enters=6, changes=3)
    lytics_env.set_version("high_value", 1)
    JobRun(changes(google), job_id="bq_changes", day=24).run()
    second = bq.tables[TABLE][500:]
    assert sorted(r["exit"] for r in second) == ["false"] * 6 + ["true"] * 4  # changes are not rows
    assert all(r["email"] for r in second)


def test_a_killed_run_retried_appends_every_change_once(lytics_env, google, monkeypatch) -> None:
    from lytics_provider.pipeline.bigquery_loads import BigQueryLoadJobs

    bq = FakeBigQuery()
    bq.install(monkeypatch)
    run = JobRun(changes(google, batch_size=100), job_id="bq_kill")
    run.run(until="scan")
    real_wait, waits = BigQueryLoadJobs.wait_for_loads, []

    def killed_on_the_third(self: Any, *args: Any) -> Any:
        waits.append(1)
        if len(waits) == 3:  # the third load job started, the worker lost before its ack
            raise ConnectionResetError("worker lost")
        return real_wait(self, *args)

    monkeypatch.setattr(BigQueryLoadJobs, "wait_for_loads", killed_on_the_third)
    with pytest.raises(ConnectionResetError):
        run.run()
    assert len(bq.loads) == 3
    run.context["ti"].try_number = 2
    run.run()
    emails = [r["email"] for r in bq.tables[TABLE]]
    assert len(emails) == len(set(emails)) == 500  # the third batch was reattached to, not loaded again
    assert len(bq.loads) == 5


def test_a_member_without_the_id_field_is_rejected_with_the_reason(lytics_env, google, monkeypatch) -> None:
    bq = FakeBigQuery()
    bq.install(monkeypatch)
    report = JobRun(changes(google, id_field="no_such_field"), job_id="bq_noid").run()["deliver"]
    assert TABLE not in bq.tables and report["rejected"] == 500
    assert "no_such_field (the ID Field)" in Path(report["rejects_file"]).read_text()


def test_the_example_config_validates() -> None:
    jobs, errors = load_job_files([REPO / "include" / "jobs" / "bigquery_export_audience_changes.yaml"])
    assert errors == [] and [job.dag_id for job in jobs] == ["lytics_bigquery_export_audience_changes"]
    assert jobs[0].config.id_field == "email" and jobs[0].config.table == "audience_changes"


def test_bad_options_name_the_field_and_the_fix() -> None:
    from pydantic import ValidationError

    from lytics_provider.jobs.types.warehouses import BigQueryAudienceChangesJob

    with pytest.raises(ValidationError, match="dataset"):
        BigQueryAudienceChangesJob(**changes("b", dataset="not a dataset"))
    with pytest.raises(ValidationError, match="batch_size"):
        BigQueryAudienceChangesJob(**changes("b", batch_size=0))


def test_a_dry_run_loads_nothing_and_creates_nothing(lytics_env, google, monkeypatch) -> None:
    bq = FakeBigQuery()
    bq.install(monkeypatch)
    report = JobRun(changes(google), job_id="bq_dry", dry_run=True).run()["deliver"]
    assert report["dry_run"] is True and bq.loads == [] and bq.datasets == set()
    assert _blobs(google) == {}
