# ruff: noqa: F811 - pytest fixtures imported from their modules
"""Omeda, Selligent and Adobe Campaign: a CSV of the identifier and fields on SFTP, byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from lytics_provider.transfers.lytics_to_adobe_campaign import AdobeCampaignExportOperator
from lytics_provider.transfers.lytics_to_omeda import OmedaExportOperator
from lytics_provider.transfers.lytics_to_selligent import SelligentExportOperator
from tests.helpers import run_task
from tests.integration.partner_drops import CONN_ID, Drop, drop, partner_sftp_server, rejects_of, scan_of  # noqa: F401

MEMBERS = [
    {"_uid": "u1", "email": "a@example.com", "first_name": "Ann", "segments": ["high_value", "newsletter"]},
    {"_uid": "u2", "email": "b@example.com", "first_name": 'Bo "B"', "scores": {"x": 1}},
    {"_uid": "u3", "email": "nope", "first_name": "Cy"},
]
CSV = (
    b"email,first_name,segments,scores\r\n"
    b'a@example.com,Ann,"high_value,newsletter",\r\n'
    b'b@example.com,"Bo ""B""",,"{""x"":1}"\r\n'
)


@pytest.mark.parametrize(
    ("operator", "name"),
    [
        (OmedaExportOperator, "2026-11-23_00-00-00.csv"),
        (SelligentExportOperator, "lytics_high_value_20261123000000.csv"),
        (AdobeCampaignExportOperator, "lytics_high_value_20261123000000.csv"),
    ],
    ids=["omeda", "selligent", "adobe_campaign"],
)
def test_csv_is_identifier_then_fields_with_rejects(
    drop: Drop, tmp_path: Path, operator: type, name: str
) -> None:
    deliver = operator(
        task_id="deliver",
        job_id="csv",
        sftp_conn_id=CONN_ID,
        folder=drop.folder,
        fields=["first_name", "segments", "scores"],
    )
    report = run_task(deliver, scan_of(tmp_path, MEMBERS))
    assert drop.names() == [name]
    assert drop.read(name) == CSV
    assert rejects_of(report) == [("u3", "invalid email address in 'email'")]


@pytest.mark.parametrize(
    "example", ["omeda_export.yaml", "selligent_export.yaml", "adobe_campaign_export.yaml"]
)
def test_examples_build_scan_deliver_report(example: str) -> None:
    from airflow.sdk import DAG

    from lytics_provider.jobs.context import JobContext
    from lytics_provider.jobs.loader import load_job_file

    path = Path(__file__).resolve().parents[2] / "include" / "jobs" / example
    config = load_job_file(path)
    with DAG("example", schedule=None) as dag:
        config.add_tasks(JobContext(dag, "example", path))
    assert dag.task_dict["deliver"].downstream_task_ids == {"report"}
    assert dag.task_dict["deliver"].folder == config.folder
    assert "email" in dag.task_dict["scan"].fields


def test_adobe_campaign_runs_hourly_or_daily() -> None:
    from pydantic import ValidationError

    from lytics_provider.jobs.types.partner_drops import AdobeCampaignExportJob

    base = {"type": "adobe_campaign_export", "audience": "a", "sftp_conn_id": "s"}
    assert (
        AdobeCampaignExportJob.model_validate({**base, "file_export_frequency": "hourly"}).frequency
        == "hourly"
    )
    with pytest.raises(ValidationError, match="hourly or daily"):
        AdobeCampaignExportJob.model_validate({**base, "frequency": "weekly"})
