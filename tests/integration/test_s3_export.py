# ruff: noqa: F811 - pytest fixtures imported from conftest_warehouse
"""Audience and activity exports to S3, against a moto server on loopback."""

from __future__ import annotations

import csv
import gzip
import io
import json

import pytest

from lytics_provider.operators.stream_position import EVENTS_POSITION_KEY
from lytics_provider.pipeline.pgp import decrypt_file
from lytics_provider.pipeline.workarea import JobState
from lytics_provider.pipeline.writers import format_csv_value
from lytics_provider.transfers.lytics_to_s3 import LyticsStreamToS3Operator, LyticsToS3Operator
from tests.helpers import make_context, run_task
from tests.integration.conftest_warehouse import (  # noqa: F401 - fixtures
    gcs_bucket,
    gcs_emulator,
    lytics_env,
    moto_endpoint,
    pgp_keypair,
    s3_bucket,
    s3_client,
    scanned_context,
)

FIELDS = ["_uid", "email", "score_engagement", "segments", "scores", "last_active_ts"]


def _objects(endpoint: str, bucket: str) -> dict[str, bytes]:
    client = s3_client(endpoint)
    listing = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing}


def test_csv_gzip_export_has_every_member_once_and_a_retry_rewrites_the_same_object(
    lytics_env, s3_bucket, moto_endpoint
) -> None:
    context = scanned_context("high_value")
    op = LyticsToS3Operator(
        task_id="deliver", job_id="job", bucket=s3_bucket, directory="exports/lytics", fields=FIELDS
    )
    report = run_task(op, context)
    objects = _objects(moto_endpoint, s3_bucket)
    key = "exports/lytics/lytics_high_value_20261123T000000Z.csv.gz"
    assert list(objects) == [key]
    assert report["target"] == f"s3://{s3_bucket}/{key}"
    rows = list(csv.DictReader(io.StringIO(gzip.decompress(objects[key]).decode())))
    expected = list(lytics_env.expected_members("high_value"))
    assert [r["_uid"] for r in rows] == [m["_uid"] for m in expected]
    assert rows[7] == {f: format_csv_value(expected[7].get(f)) for f in FIELDS}
    assert report["rows"] == len(expected) == 500

    run_task(op, context)  # the task retried: same key, same bytes
    assert _objects(moto_endpoint, s3_bucket) == objects


def test_jsonl_pgp_export_decrypts_to_the_audience(
    lytics_env, s3_bucket, moto_endpoint, pgp_keypair, tmp_path, monkeypatch
) -> None:
    public, private, passphrase = pgp_keypair
    monkeypatch.setenv(
        "AIRFLOW_CONN_PGP_PARTNER", json.dumps({"conn_type": "generic", "extra": {"public_key": public}})
    )
    context = scanned_context("high_value")
    op = LyticsToS3Operator(
        task_id="deliver",
        job_id="job",
        bucket=s3_bucket,
        file_format="jsonl",
        compression="gz",
        pgp_conn_id="pgp_partner",
        fields=["email", "scores"],
    )
    report = run_task(op, context)
    key = "lytics_high_value_20261123T000000Z.json.gz.pgp"
    body = _objects(moto_endpoint, s3_bucket)[key]
    assert not body.startswith(b"\x1f\x8b")
    (tmp_path / "in.pgp").write_bytes(body)
    decrypt_file(private, passphrase, tmp_path / "in.pgp", tmp_path / "out.gz")
    lines = gzip.decompress((tmp_path / "out.gz").read_bytes()).decode().splitlines()
    expected = [
        {k: m[k] for k in ("email", "scores") if k in m} for m in lytics_env.expected_members("high_value")
    ]
    assert [json.loads(line) for line in lines] == expected
    assert report["rows"] == 500


def test_dry_run_uploads_nothing(lytics_env, s3_bucket, moto_endpoint) -> None:
    context = scanned_context("high_value", dry_run=True)
    report = run_task(LyticsToS3Operator(task_id="deliver", job_id="job", bucket=s3_bucket), context)
    assert report["dry_run"] is True
    assert report["target"].endswith("lytics_high_value_20261123T000000Z.csv.gz")
    assert _objects(moto_endpoint, s3_bucket) == {}


def test_bad_options_name_the_fix() -> None:
    with pytest.raises(ValueError, match="file_format 'xml' is not supported; use 'csv' or 'jsonl'"):
        LyticsToS3Operator(task_id="d", job_id="j", bucket="b", file_format="xml")


def _day(day: int) -> dict:
    import pendulum

    logical = pendulum.datetime(2026, 11, day, tz="UTC")
    return make_context(run_id=f"scheduled__{logical.isoformat()}", logical_date=logical)


def _event_numbers(body: bytes) -> list[int]:
    return [int(r["n"]) for r in csv.DictReader(io.StringIO(gzip.decompress(body).decode()))]


def test_activity_export_sends_every_event_once_then_only_new_ones(
    lytics_env, s3_bucket, moto_endpoint, monkeypatch
) -> None:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from tests.integration.conftest_warehouse import install_stream_events

    events = [{"email": f"u{i}@example.com", "event": "click", "n": i} for i in range(2345)]
    events[5]["extra"] = "only here"
    install_stream_events(lytics_env, {"web_events": events})
    op = LyticsStreamToS3Operator(task_id="deliver", job_id="job", stream="web_events", bucket=s3_bucket)
    report = run_task(op, _day(23))
    body = _objects(moto_endpoint, s3_bucket)["lytics_web_events_events_20261123T000000Z.csv.gz"]
    rows = list(csv.DictReader(io.StringIO(gzip.decompress(body).decode())))
    assert report["rows"] == len(rows) == 2345 and report["since_position"] is None
    assert [int(r["n"]) for r in rows] == list(range(2345))
    assert rows[5]["extra"] == "only here" and rows[6]["extra"] == ""

    # run 2: the upload fails, the position stays; more events arrive before the retry
    install_stream_events(lytics_env, {"web_events": [{"n": i, "event": "view"} for i in range(2345, 2400)]})
    real_load = S3Hook.load_file

    def lost(self: S3Hook, *args: object, **kwargs: object) -> None:
        raise ConnectionResetError("connection lost during the upload")

    monkeypatch.setattr(S3Hook, "load_file", lost)
    with pytest.raises(ConnectionResetError):
        run_task(op, _day(24))
    assert JobState("job").get(EVENTS_POSITION_KEY) == report["position"]
    install_stream_events(lytics_env, {"web_events": [{"n": i, "event": "view"} for i in range(2400, 2410)]})
    monkeypatch.setattr(S3Hook, "load_file", real_load)
    second = run_task(op, _day(24))  # the retry
    objects = _objects(moto_endpoint, s3_bucket)
    assert _event_numbers(objects["lytics_web_events_events_20261124T000000Z.csv.gz"]) == list(
        range(2345, 2410)
    )
    assert second["rows"] == 65 and second["since_position"] == report["position"]

    third = run_task(op, _day(25))  # nothing new: nothing uploaded, the position kept
    assert third["rows"] == 0 and _objects(moto_endpoint, s3_bucket) == objects
    assert JobState("job").get(EVENTS_POSITION_KEY) == second["position"]


def test_a_task_killed_mid_file_leaves_no_object_and_the_retry_is_complete(
    lytics_env, s3_bucket, moto_endpoint, monkeypatch
) -> None:
    context = scanned_context("high_value")
    op = LyticsToS3Operator(task_id="deliver", job_id="job", bucket=s3_bucket, fields=FIELDS)
    real_records = LyticsToS3Operator.records

    def dying_records(self):
        for n, record in enumerate(real_records(self)):
            if n == 300:
                raise MemoryError("worker killed")
            yield record

    monkeypatch.setattr(LyticsToS3Operator, "records", dying_records)
    with pytest.raises(MemoryError):
        run_task(op, context)
    assert _objects(moto_endpoint, s3_bucket) == {}  # nothing under the final name
    monkeypatch.setattr(LyticsToS3Operator, "records", real_records)
    run_task(op, context)
    (body,) = _objects(moto_endpoint, s3_bucket).values()
    rows = list(csv.DictReader(io.StringIO(gzip.decompress(body).decode())))
    assert [r["_uid"] for r in rows] == [m["_uid"] for m in lytics_env.expected_members("high_value")]
