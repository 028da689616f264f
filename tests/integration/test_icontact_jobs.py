"""The iContact job configs: validation messages and the tasks they add to a DAG."""

from __future__ import annotations

from pathlib import Path

import pendulum
import pytest
import yaml
from airflow.sdk import DAG
from pydantic import ValidationError

from lytics_provider.jobs.context import JobContext
from lytics_provider.jobs.types.icontact import IContactExportJob, IContactImportJob

JOBS = Path(__file__).resolve().parents[2] / "include" / "jobs"


def _load(name: str) -> dict:
    return yaml.safe_load((JOBS / name).read_text(encoding="utf-8"))


def _dag(config) -> DAG:
    with DAG("icontact_test", schedule=None, start_date=pendulum.datetime(2026, 1, 1)) as dag:
        config.add_tasks(JobContext(dag=dag, job_id="icontact_test", source=Path("x.yaml")))
    return dag


def test_import_example_builds_users_activity_report() -> None:
    job = IContactImportJob.model_validate(_load("icontact_import.yaml"))
    assert job.frequency == "hourly" and job.aid == 4242
    dag = _dag(job)
    assert dag.task_dict["users"].downstream_task_ids == {"activity"}
    assert dag.task_dict["activity"].downstream_task_ids == {"report"}
    assert dag.task_dict["activity"].aid == 4242
    assert dag.task_dict["users"].aid == 4242


def test_without_filter_by_aid_no_task_filters() -> None:
    job = IContactImportJob(type="icontact_import", filter_by_aid=False, aid=4242)
    dag = _dag(job)
    assert dag.task_dict["users"].aid is None and dag.task_dict["activity"].aid is None


def test_keep_updated_import_defaults_to_hourly() -> None:
    assert IContactImportJob(type="icontact_import", keep_updated=True).frequency == "hourly"


def test_filter_by_aid_without_aid_names_the_fix() -> None:
    with pytest.raises(ValidationError, match="set aid to your Lytics account AID"):
        IContactImportJob(type="icontact_import", filter_by_aid=True)


def test_export_example_builds_scan_deliver_report() -> None:
    job = IContactExportJob.model_validate(_load("icontact_export.yaml"))
    dag = _dag(job)
    assert dag.task_dict["scan"].downstream_task_ids == {"deliver"}
    assert dag.task_dict["deliver"].downstream_task_ids == {"report"}
    assert {"ic_contact_id", "email"} <= set(dag.task_dict["scan"].fields)
    assert dag.task_dict["deliver"].destination_list == "Newsletter"


def test_export_needs_a_list_and_refuses_typos() -> None:
    with pytest.raises(ValidationError, match="destination_list"):
        IContactExportJob(type="icontact_export", audience="a")
    with pytest.raises(ValidationError, match="destination_lst"):
        IContactExportJob(type="icontact_export", audience="a", destination_list="1", destination_lst="1")
