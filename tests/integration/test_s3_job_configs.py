"""The warehouse and cloud-storage job configs: the shipped examples build DAGs; bad configs say why."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from lytics_provider.jobs.dag_builder import build_dag
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.jobs.schema import job_types
from lytics_provider.jobs.types import warehouses
from lytics_provider.jobs.types.warehouses import S3ImportJob, SnowflakeImportJob

JOBS = Path(__file__).resolve().parents[2] / "include" / "jobs"
TYPES = {name for name, cls in job_types().items() if cls.__module__ == warehouses.__name__}
EXPORTS = {
    "s3_export",
    "gcs_export",
    "redshift_export",
    "bigquery_export",
    "bigquery_export_audience_changes",
    "snowflake_export",
}


def _examples() -> list[Path]:
    return [
        p
        for p in sorted(JOBS.glob("*.yaml"))
        if p.read_text().count("type: ") and any(f"type: {t}\n" in p.read_text() for t in TYPES)
    ]


def test_every_warehouse_job_type_has_an_example_that_builds_its_dag() -> None:
    loaded, errors = load_job_files(_examples())
    assert errors == []
    assert {job.config.type for job in loaded} == TYPES
    for job in loaded:
        dag = build_dag(job)
        tasks = sorted(dag.task_ids)
        if job.config.type in EXPORTS:
            assert tasks == ["deliver", "report", "scan"]
            assert dag.get_task("deliver").upstream_task_ids == {"scan"}
        else:
            assert len(tasks) == 1
        assert "dry_run" in dag.params
        if job.config.type == "s3_import":  # the selected fields reach the operator
            assert dag.get_task("import").fields == ["email", "first_name", "plan", "signup_date"]


def test_bad_configs_name_the_field_and_the_fix() -> None:
    with pytest.raises(ValidationError, match="events_since '2026-01-01' has no UTC offset"):
        SnowflakeImportJob(
            type="snowflake_import",
            source="T",
            modified_timestamp_field="M",
            stream="s",
            events_since="2026-01-01",
        )
    with pytest.raises(ValidationError, match="pgp_conn_id is missing"):
        S3ImportJob(type="s3_import", bucket="b", stream="s", pgp_encrypted=True)
    with pytest.raises(ValidationError, match="since"):
        S3ImportJob(type="s3_import", bucket="b", stream="s", since="yesterday")
    with pytest.raises(ValidationError, match=r"timestamp_field 'ts' is not in fields.*add 'ts' to fields"):
        S3ImportJob(type="s3_import", bucket="b", stream="s", fields=["email"], timestamp_field="ts")
    with pytest.raises(ValidationError, match="fields names email more than once"):
        S3ImportJob(type="s3_import", bucket="b", stream="s", fields=["email", "email"])
