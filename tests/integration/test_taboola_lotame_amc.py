# ruff: noqa: F811 - pytest fixtures imported from their modules
"""Taboola, Lotame and Amazon Marketing Cloud file drops, byte for byte, on moto S3 and SFTP."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from lytics_provider.transfers.lytics_to_amazon_marketing_cloud import AmazonMarketingCloudExportOperator
from lytics_provider.transfers.lytics_to_lotame import LotameExportOperator
from lytics_provider.transfers.lytics_to_taboola import TaboolaExportOperator
from tests.helpers import run_task
from tests.integration.conftest_warehouse import moto_endpoint, s3_bucket, s3_client  # noqa: F401
from tests.integration.partner_drops import CONN_ID, Drop, drop, partner_sftp_server, rejects_of, scan_of  # noqa: F401


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def s3_object(endpoint: str, bucket: str) -> tuple[str, bytes]:
    client = s3_client(endpoint)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert len(keys) == 1
    return keys[0], client.get_object(Bucket=bucket, Key=keys[0])["Body"].read()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


# -- Taboola ---------------------------------------------------------------------------------------


def test_taboola_sends_membership_of_users_with_a_taboola_id_only(
    s3_bucket: str, moto_endpoint: str, data_dir: Path
) -> None:
    members = [
        {
            "_uid": "u1",
            "email": "a@x.com",
            "taboola_ids": ["T1", "T2"],
            "segments": ["high_value", "newsletter"],
        },
        {"_uid": "u2", "taboola_ids": "T3", "segments": ["high_value"]},
        {"_uid": "u3", "email": "c@x.com", "taboola_ids": [], "segments": ["high_value"]},
        {"_uid": "u4", "email": "d@x.com", "segments": ["high_value"]},
    ]
    deliver = TaboolaExportOperator(
        task_id="deliver",
        job_id="tb",
        bucket=s3_bucket,
        directory="taboola",
        audience_membership=["newsletter"],
    )
    report = run_task(deliver, scan_of(data_dir, members))
    key, body = s3_object(moto_endpoint, s3_bucket)
    assert key == "taboola/lytics_taboola_high_value_20261123000000.csv"
    assert body == (
        b"taboola_id,audience\r\n"
        b"T1,high_value\r\nT1,newsletter\r\nT2,high_value\r\nT2,newsletter\r\n"
        b"T3,high_value\r\n"
    )
    reason = (
        "missing identifier: no 'taboola_ids' value (only users matched by the Taboola cookie sync are sent)"
    )
    assert rejects_of(report) == [("u3", reason), ("u4", reason)]
    assert (report["rows"], report["rejected"]) == (2, 2)


def test_taboola_job_is_membership_only() -> None:
    from pydantic import ValidationError

    from lytics_provider.jobs.types.partner_drops import TaboolaExportJob

    base = {"type": "taboola_export", "audience": "a", "bucket": "b"}
    assert TaboolaExportJob.model_validate(base).scan_field_list() == ["taboola_ids", "segments"]
    with pytest.raises(ValidationError, match="membership only"):
        TaboolaExportJob.model_validate({**base, "fields_to_export": ["email"]})


# -- Lotame ----------------------------------------------------------------------------------------

LOTAME_MEMBERS = [
    {"_uid": "u1", "lotame_id": "L1", "city": "Oslo", "segments": ["high_value", "newsletter"]},
    {"_uid": "u2", "lotame_id": "L2", "segments": ["high_value"]},
    {"_uid": "u3", "city": "Rome", "segments": ["high_value"]},
]
LOTAME_CSV = b"lotame_id,high_value,newsletter\r\nL1,1,1\r\nL2,1,\r\n"


def test_lotame_on_sftp_and_s3_is_the_same_membership_csv(
    drop: Drop, s3_bucket: str, moto_endpoint: str, tmp_path: Path
) -> None:
    options: dict[str, Any] = {"identifier": "lotame_id", "audience_membership": ["high_value", "newsletter"]}
    sftp = LotameExportOperator(
        task_id="deliver", job_id="lo", sftp_conn_id=CONN_ID, folder=drop.folder, **options
    )
    report = run_task(sftp, scan_of(tmp_path, LOTAME_MEMBERS))
    assert drop.names() == ["lytics_lotame_high_value_20261123000000.csv"]
    assert drop.read("lytics_lotame_high_value_20261123000000.csv") == LOTAME_CSV
    assert (report["rows"], report["rejected"]) == (2, 1)
    assert rejects_of(report) == [("u3", "missing identifier: no 'lotame_id' value")]

    s3 = LotameExportOperator(task_id="deliver", job_id="lo_s3", bucket=s3_bucket, fields=["city"], **options)
    run_task(s3, scan_of(tmp_path, LOTAME_MEMBERS))
    key, body = s3_object(moto_endpoint, s3_bucket)
    assert key == "lytics_lotame_high_value_20261123000000.csv"
    assert body == b"lotame_id,city,high_value,newsletter\r\nL1,Oslo,1,1\r\nL2,,1,\r\n"


def test_lotame_job_takes_sftp_or_s3() -> None:
    from pydantic import ValidationError

    from lytics_provider.jobs.types.partner_drops import LotameExportJob

    base = {"type": "lotame_export", "audience": "a"}
    assert LotameExportJob.model_validate({**base, "bucket": "b"}).scan_field_list() == ["_uid", "segments"]
    with pytest.raises(ValidationError, match="not both"):
        LotameExportJob.model_validate({**base, "bucket": "b", "sftp_conn_id": "s"})
    with pytest.raises(ValidationError, match="one of them"):
        LotameExportJob.model_validate(base)


# -- Amazon Marketing Cloud ------------------------------------------------------------------------


def test_amc_file_holds_normalised_sha256_match_keys_of_current_members(
    s3_bucket: str, moto_endpoint: str, data_dir: Path
) -> None:
    members = [
        {"_uid": "u1", "email": " Ann@Example.COM ", "phone": "(415) 555-0100", "zip": "94107-1234"},
        {"_uid": "u2", "email": ["bo@example.com", "b2@example.com"], "last_name": "Müller-Lüdenscheidt"},
        {"_uid": "u3", "email": "not-an-email", "phone": "12"},
    ]
    deliver = AmazonMarketingCloudExportOperator(
        task_id="deliver",
        job_id="amc",
        bucket=s3_bucket,
        directory="amc",
        identifiers={"email": "email", "phone": "phone", "postal_code": "zip", "last_name": "last_name"},
    )
    context = scan_of(data_dir, members)
    report = run_task(deliver, context)
    key, body = s3_object(moto_endpoint, s3_bucket)
    assert key == "amc/lytics_amc_high_value_20261123000000.csv"
    assert body == (
        b"email,phone,postal_code,last_name\r\n"
        + f"{sha('ann@example.com')},{sha('14155550100')},{sha('94107')},\r\n".encode()
        + f"{sha('bo@example.com')},,,{sha('muellerluedenscheidt')}\r\n".encode()
    )
    assert rejects_of(report) == [
        ("u3", "no usable identifier: none of email, phone, zip, last_name normalises to a match key")
    ]
    assert b"example.com" not in body

    deliver_next = AmazonMarketingCloudExportOperator(
        task_id="deliver", job_id="amc", bucket=s3_bucket, directory="amc", identifiers={"email": "email"}
    )
    next_day = scan_of(data_dir, members[1:2])
    next_day["logical_date"] = next_day["logical_date"].add(days=1)
    run_task(deliver_next, next_day)
    client = s3_client(moto_endpoint)
    newest = client.get_object(Bucket=s3_bucket, Key="amc/lytics_amc_high_value_20261124000000.csv")[
        "Body"
    ].read()
    assert newest == f"email\r\n{sha('bo@example.com')}\r\n".encode()  # u1 left: not in the newest file


def test_amc_job_checks_identifiers_and_country() -> None:
    from pydantic import ValidationError

    from lytics_provider.jobs.types.partner_drops import AmazonMarketingCloudExportJob

    base = {"type": "amazon_marketing_cloud_export", "audience": "a", "bucket": "b"}
    config = AmazonMarketingCloudExportJob.model_validate(
        {**base, "identifiers": {"email": "e", "phone": "p"}}
    )
    assert config.scan_field_list() == ["e", "p"]
    with pytest.raises(ValidationError, match="unknown identifier"):
        AmazonMarketingCloudExportJob.model_validate({**base, "identifiers": {"maid": "m"}})
    with pytest.raises(ValidationError, match="phone numbers cannot be normalised"):
        AmazonMarketingCloudExportJob.model_validate({**base, "identifiers": {"phone": "p"}, "country": "ZZ"})


@pytest.mark.parametrize(
    "example", ["taboola_export.yaml", "lotame_export.yaml", "amazon_marketing_cloud_export.yaml"]
)
def test_examples_build_scan_deliver_report(example: str) -> None:
    from airflow.sdk import DAG

    from lytics_provider.jobs.context import JobContext
    from lytics_provider.jobs.loader import load_job_file

    path = Path(__file__).resolve().parents[2] / "include" / "jobs" / example
    config = load_job_file(path)
    with DAG("example", schedule=None) as dag:
        config.add_tasks(JobContext(dag, "example", path))
    assert dag.task_dict["scan"].downstream_task_ids == {"deliver"}
    assert dag.task_dict["deliver"].downstream_task_ids == {"report"}
    assert dag.task_dict["deliver"].bucket == config.bucket


def test_amc_exit_guard_stops_a_mass_removal_before_upload(
    s3_bucket: str, moto_endpoint: str, data_dir: Path
) -> None:
    from lytics_provider.operators.lytics import LyticsCommitRunOperator
    from lytics_provider.pipeline.exit_guard import MassExitError
    from lytics_provider.pipeline.state_store import SNAPSHOT_NAME
    from lytics_provider.pipeline.workarea import run_dir

    members = [{"_uid": f"u{i}", "email": f"m{i}@example.com"} for i in range(8)]

    def run(day: int, kept: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
        run_id = f"scheduled__{day}_{len(params)}"
        context = scan_of(data_dir, kept, path=run_dir("amc_guard", run_id) / SNAPSHOT_NAME, **params)
        context["logical_date"] = context["logical_date"].add(days=day)
        context["run_id"] = run_id
        deliver = AmazonMarketingCloudExportOperator(
            task_id="deliver",
            job_id="amc_guard",
            bucket=s3_bucket,
            max_exit_fraction=0.25,
            exit_guard_min_exits=2,
        )
        report = run_task(deliver, context)
        run_task(LyticsCommitRunOperator(task_id="report", job_id="amc_guard"), context)
        return report

    assert "exit_guard" not in run(0, members)  # first run: nothing to compare with
    assert run(1, members[:7])["exit_guard"]["status"] == "ok"  # 1 exit of 8
    with pytest.raises(MassExitError, match="3 of 7 members of the previous audience"):
        run(2, members[:4])
    listing = s3_client(moto_endpoint).list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert len(listing) == 2  # the blocked run uploaded nothing
    assert run(2, members[:4], allow_mass_exit=True)["exit_guard"]["status"] == "allowed"
