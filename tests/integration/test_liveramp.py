# ruff: noqa: F811 - pytest fixtures imported from their modules
"""LiveRamp file drops, byte for byte: the CSV on SFTP and S3, the EU format and Export Identifier."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.transfers.lytics_to_liveramp import (
    LiveRampEUExportOperator,
    LiveRampExportOperator,
    LiveRampIdentifierExportOperator,
)
from tests.helpers import run_task
from tests.integration.conftest_warehouse import moto_endpoint, s3_bucket, s3_client  # noqa: F401
from tests.integration.partner_drops import CONN_ID, Drop, drop, partner_sftp_server, rejects_of, scan_of  # noqa: F401

MEMBERS = [
    {
        "_uid": "u1",
        "email": "a@example.com",
        "first_name": "Ann",
        "tags": ["x", "y"],
        "ramp_id": "XY1",
        "segments": ["high_value", "newsletter"],
    },
    {
        "_uid": "u2",
        "email": "b@example.com",
        "first_name": "Bo, Jr.",
        "ramp_id": "XY2",
        "segments": ["high_value"],
    },
    {"_uid": "u3", "email": "not-an-email", "first_name": "Cy", "segments": ["high_value"]},
]
CSV_NAME = "lytics_liveramp_high_value_20261123000000.csv"
FULL_OPTIONS: dict[str, Any] = {
    "fields": ["email", "first_name", "tags"],
    "audience_membership": ["high_value", "newsletter"],
    "append_segment_name": True,
    "additional_segments": True,
}
FULL_CSV = (
    b"email,first_name,tags,high_value,newsletter,segment_name,segments\r\n"
    b"a@example.com,Ann,x&y,1,1,High Value,high_value&newsletter\r\n"
    b'b@example.com,"Bo, Jr.",,1,,High Value,high_value\r\n'
)


def test_sftp_csv_is_identifier_fields_then_membership_columns(drop: Drop, tmp_path: Path) -> None:
    deliver = LiveRampExportOperator(
        task_id="deliver", job_id="lr", sftp_conn_id=CONN_ID, folder=drop.folder, **FULL_OPTIONS
    )
    report = run_task(deliver, scan_of(tmp_path, MEMBERS))

    assert drop.names() == [CSV_NAME]
    assert drop.read(CSV_NAME) == FULL_CSV
    assert (report["rows"], report["rejected"]) == (2, 1)
    assert rejects_of(report) == [("u3", "invalid email address in 'email'")]
    assert report["remote_path"] == f"{drop.folder}/{CSV_NAME}"


def test_defaults_give_one_membership_column_for_the_exported_audience_and_join_with_ampersand(
    drop: Drop, tmp_path: Path
) -> None:
    deliver = LiveRampExportOperator(
        task_id="deliver",
        job_id="lr",
        sftp_conn_id=CONN_ID,
        folder=drop.folder,
        fields=["first_name", "tags"],
    )
    run_task(deliver, scan_of(tmp_path, MEMBERS[:2]))
    assert drop.read(CSV_NAME) == (
        b'email,first_name,tags,high_value\r\na@example.com,Ann,x&y,1\r\nb@example.com,"Bo, Jr.",,1\r\n'
    )


def test_custom_join_joins_multi_value_fields(drop: Drop, tmp_path: Path) -> None:
    deliver = LiveRampExportOperator(
        task_id="deliver",
        job_id="lr",
        sftp_conn_id=CONN_ID,
        folder=drop.folder,
        fields=["tags"],
        custom_join=";",
        additional_segments=True,
    )
    run_task(deliver, scan_of(tmp_path, MEMBERS[:1]))
    assert drop.read(CSV_NAME) == (
        b"email,tags,high_value,segments\r\na@example.com,x;y,1,high_value;newsletter\r\n"
    )


def test_s3_csv_has_the_same_bytes(s3_bucket: str, moto_endpoint: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    deliver = LiveRampExportOperator(
        task_id="deliver", job_id="lr", bucket=s3_bucket, directory="liveramp", **FULL_OPTIONS
    )
    context = scan_of(tmp_path, MEMBERS)
    report = run_task(deliver, context)
    key = f"liveramp/{CSV_NAME}"
    assert report["target"] == f"s3://{s3_bucket}/{key}"
    client = s3_client(moto_endpoint)
    assert client.get_object(Bucket=s3_bucket, Key=key)["Body"].read() == FULL_CSV
    run_task(deliver, context)  # a retry of the run writes the same key with the same bytes
    listing = client.list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert [o["Key"] for o in listing] == [key]
    assert client.get_object(Bucket=s3_bucket, Key=key)["Body"].read() == FULL_CSV


def test_eu_format_has_customer_id_mapped_fields_and_the_audience(drop: Drop, tmp_path: Path) -> None:
    deliver = LiveRampEUExportOperator(
        task_id="deliver",
        job_id="lr",
        sftp_conn_id=CONN_ID,
        folder=drop.folder,
        field_mapping={"first_name": "First Name", "tags": "Interests"},
    )
    run_task(deliver, scan_of(tmp_path, MEMBERS))
    assert drop.read("lytics_liveramp_eu_high_value_20261123000000.csv") == (
        b"Customer ID,First Name,Interests,Segment\r\n"
        b"a@example.com,Ann,x&y,High Value\r\n"
        b'b@example.com,"Bo, Jr.",,High Value\r\n'
    )
    slug = LiveRampEUExportOperator(
        task_id="deliver", job_id="lr2", sftp_conn_id=CONN_ID, folder=drop.folder, audience_label="slug"
    )
    run_task(slug, scan_of(tmp_path, MEMBERS[:1]))
    assert drop.read("lytics_liveramp_eu_high_value_20261123000000.csv") == (
        b"Customer ID,Segment\r\na@example.com,high_value\r\n"
    )


def test_export_identifier_writes_a_line_per_audience_of_the_member(
    drop: Drop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bool] = []

    def segments(self: Any, kind: str = "segment", table: str = "user", sizes: bool = True) -> list[dict]:
        calls.append(sizes)
        return [{"slug_name": "newsletter", "name": "Newsletter Readers"}, {"slug_name": "x", "name": "X"}]

    monkeypatch.setattr(LyticsHook, "list_segments", segments)
    deliver = LiveRampIdentifierExportOperator(
        task_id="deliver",
        job_id="lr",
        sftp_conn_id=CONN_ID,
        folder=drop.folder,
        identifier="ramp_id",
        audience_membership=["newsletter"],
    )
    report = run_task(deliver, scan_of(tmp_path, MEMBERS))
    assert drop.read("lytics_liveramp_ids_high_value_20261123000000.csv") == (
        b"identifier,segment\r\nXY1,High Value\r\nXY1,Newsletter Readers\r\nXY2,High Value\r\n"
    )
    assert calls == [False]
    assert (report["rows"], report["rejected"]) == (2, 1)
    assert rejects_of(report) == [("u3", "missing identifier: no 'ramp_id' value")]


def test_dry_run_stages_the_file_and_uploads_nothing(drop: Drop, tmp_path: Path) -> None:
    deliver = LiveRampExportOperator(
        task_id="deliver", job_id="lr", sftp_conn_id=CONN_ID, folder=drop.folder, **FULL_OPTIONS
    )
    report = run_task(deliver, scan_of(tmp_path, MEMBERS, dry_run=True))
    assert report["dry_run"] is True and drop.names() == []
    assert Path(report["staged_file"]).read_bytes() == FULL_CSV


def test_an_operator_needs_exactly_one_destination() -> None:
    with pytest.raises(ValueError, match=r"give sftp_conn_id \(SFTP\) or bucket \(S3\), not neither"):
        LiveRampExportOperator(task_id="deliver", job_id="lr")
    with pytest.raises(ValueError, match="not both"):
        LiveRampExportOperator(task_id="deliver", job_id="lr", sftp_conn_id="s", bucket="b")


# -- job configs -----------------------------------------------------------------------------------

INCLUDE = Path(__file__).resolve().parents[2] / "include" / "jobs"


@pytest.mark.parametrize(
    ("example", "operator"),
    [
        ("liveramp_s3_export.yaml", LiveRampExportOperator),
        ("liveramp_sftp_export.yaml", LiveRampExportOperator),
        ("liveramp_eu_export.yaml", LiveRampEUExportOperator),
        ("liveramp_identifier_export.yaml", LiveRampIdentifierExportOperator),
    ],
)
def test_examples_build_scan_deliver_report(example: str, operator: type) -> None:
    from airflow.sdk import DAG

    from lytics_provider.jobs.context import JobContext
    from lytics_provider.jobs.loader import load_job_file

    config = load_job_file(INCLUDE / example)
    assert config.keep_updated is True
    with DAG("lr_example", schedule=None) as dag:
        config.add_tasks(JobContext(dag, "lr_example", INCLUDE / example))
    deliver = dag.task_dict["deliver"]
    assert type(deliver) is operator
    assert dag.task_dict["scan"].downstream_task_ids == {"deliver"}
    assert deliver.downstream_task_ids == {"report"}
    assert "segments" in dag.task_dict["scan"].fields
    assert deliver.identifier == config.identifier and deliver.custom_join == "&"


def test_form_names_are_the_schedule_and_fields_options() -> None:
    from pydantic import ValidationError

    from lytics_provider.jobs.types.partner_drops import LiveRampSftpExportJob

    base = {"type": "liveramp_sftp_export", "audience": "a", "sftp_conn_id": "s"}
    config = LiveRampSftpExportJob.model_validate(
        {**base, "continuous_export": True, "file_export_frequency": "weekly", "fields_to_export": ["city"]}
    )
    assert (config.keep_updated, config.frequency, config.fields) == (True, "weekly", ["city"])
    assert config.scan_field_list() == ["email", "city", "segments"]
    assert LiveRampSftpExportJob.model_validate(base).custom_join == "&"
    with pytest.raises(ValidationError, match="give only continuous_export"):
        LiveRampSftpExportJob.model_validate({**base, "continuous_export": True, "keep_updated": False})
