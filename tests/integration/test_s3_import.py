# ruff: noqa: F811 - pytest fixtures imported from conftest_warehouse
"""S3 file imports against a moto server: order, gzip, PGP, rejects, resume, continuous sequence
(and its stop when the next file is missing), field selection."""

from __future__ import annotations

import gzip
import json
import subprocess
import time

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from lytics_provider.pipeline.http import ServiceError
from lytics_provider.pipeline.workarea import JobState
from lytics_provider.transfers.s3_to_lytics import S3ToLyticsOperator
from lytics_sandbox.faults import FaultRule
from tests.helpers import make_context, run_task
from tests.integration.conftest_warehouse import (  # noqa: F401 - fixtures
    lytics_env,
    moto_endpoint,
    pgp_keypair,
    s3_bucket,
    s3_client,
)


def _csv(rows: range) -> bytes:
    return ("email,n,city\r\n" + "".join(f"u{i}@example.com,{i},Paris\r\n" for i in rows)).encode()


def _put(endpoint: str, bucket: str, key: str, body: bytes) -> None:
    s3_client(endpoint).put_object(Bucket=bucket, Key=key, Body=body)
    time.sleep(0.01)


def _op(bucket: str, **kwargs) -> S3ToLyticsOperator:
    kwargs.setdefault("prefix", "drops/new-users-")
    kwargs.setdefault("job_id", "s3_import")
    return S3ToLyticsOperator(task_id="import", bucket=bucket, stream="s3_users", **kwargs)


def _ns(sandbox, stream: str = "s3_users") -> list[int]:
    return [int(r["n"]) for r in sandbox.collected(stream)]


def test_csv_files_in_date_order_with_gzip_rejects_and_a_mid_file_retry(lytics_env, s3_bucket, moto_endpoint):
    bad = _csv(range(40, 50)) + b"x@example.com,50,Paris,EXTRA\r\n" + _csv(range(51, 60)).split(b"\r\n", 1)[1]
    _put(moto_endpoint, s3_bucket, "drops/new-users-a.csv", bad)
    _put(moto_endpoint, s3_bucket, "drops/new-users-b.csv.gz", gzip.compress(_csv(range(0, 40))))
    _put(moto_endpoint, s3_bucket, "drops/other.csv", _csv(range(900, 910)))
    # a.csv: 19 good rows (3 batches of <= 8); b.csv.gz: 40 rows; Lytics fails from the 6th batch on
    lytics_env.faults.add(FaultRule("5xx", path_regex="/collect/json/s3_users", after=5, times=None))
    with pytest.raises(ServiceError):
        run_task(_op(s3_bucket, batch_size=8), make_context())
    lytics_env.faults.clear()
    assert JobState("s3_import").get("in_progress") == {"key": "drops/new-users-b.csv.gz", "rows_done": 16}
    assert JobState("s3_import").get("last_file")["key"] == "drops/new-users-a.csv"
    report = run_task(_op(s3_bucket, batch_size=8), make_context())
    # a.csv is older (or of the same second: ties go by name); b.csv.gz resumes at its row 17
    assert _ns(lytics_env) == [*range(40, 50), *range(51, 60), *range(40)]
    assert report["rows"] == 24 and report["files"] == ["drops/new-users-b.csv.gz"]
    rejects = (JobState("s3_import").path.parent / "runs").rglob("rejects_drops_new-users-a.csv.jsonl")
    line = json.loads(next(rejects).read_text().splitlines()[0])
    assert line["reason"] == "too many cells: 4 for 3 header columns" and line["row_number"] == 11
    assert run_task(_op(s3_bucket), make_context(run_id="r2"))["files"] == []  # nothing new


def test_since_and_starting_file_and_pgp_json(
    lytics_env, s3_bucket, moto_endpoint, pgp_keypair, tmp_path, monkeypatch
):
    public, private, passphrase = pgp_keypair
    plain = tmp_path / "events.json"
    plain.write_text("".join(json.dumps({"n": i, "event": "signup"}) + "\n" for i in range(25)) + "[1]\n")
    home = tmp_path / "gpg"
    home.mkdir(mode=0o700)
    subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--import"],
        input=public.encode(),
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            "gpg",
            "--homedir",
            str(home),
            "--batch",
            "--trust-model",
            "always",
            "--encrypt",
            "--recipient",
            "warehouse@example.com",
            "--output",
            str(tmp_path / "e.pgp"),
            str(plain),
        ],
        check=True,
        capture_output=True,
    )
    _put(moto_endpoint, s3_bucket, "drops/new-users-1.json", b'{"n": 1000}\n')
    _put(moto_endpoint, s3_bucket, "drops/new-users-2.json.pgp", (tmp_path / "e.pgp").read_bytes())
    monkeypatch.setenv(
        "AIRFLOW_CONN_PGP_IN",
        json.dumps({"conn_type": "generic", "password": passphrase, "extra": {"private_key": private}}),
    )
    op = _op(
        s3_bucket,
        file_type="json",
        starting_file="new-users-2.json.pgp",
        pgp_conn_id="pgp_in",
        timestamp_field="ts",
        since="2020/01/01 00:00/00",
    )
    report = run_task(op, make_context())
    assert _ns(lytics_env) == list(range(25)) and report["rejected"] == 1
    assert lytics_env.collect_requests[-1]["query"]["timestamp_field"] == "ts"
    future = _op(s3_bucket, file_type="json", since="2999/01/01 00:00/00", job_id="other")
    assert run_task(future, make_context())["files"] == []


def test_continuous_prefix_timestamp_sequence(lytics_env, s3_bucket, moto_endpoint):
    body = b'{"n": %d}\n'
    _put(moto_endpoint, s3_bucket, "feed/orders_20260102000000.json", body % 2)
    _put(moto_endpoint, s3_bucket, "feed/orders_20260101000000.json", body % 1)
    _put(moto_endpoint, s3_bucket, "feed/orders-latest.json", body % 99)
    op = _op(s3_bucket, prefix="feed/orders", file_type="json", continuous=True)
    report = run_task(op, make_context())
    assert _ns(lytics_env) == [1, 2]  # name timestamp order, not upload order
    assert report["skipped"] == [
        "feed/orders-latest.json: not named prefix_timestamp.json (continuous import)"
    ]
    _put(moto_endpoint, s3_bucket, "feed/orders_20260103000000.json", body % 3)
    run_task(op, make_context(run_id="r2"))
    assert _ns(lytics_env) == [1, 2, 3]


def test_continuous_sequence_stops_when_the_next_file_is_missing(lytics_env, s3_bucket, moto_endpoint):
    body = b'{"n": %d}\n'
    op = _op(s3_bucket, prefix="feed/orders", file_type="json", continuous=True)
    assert run_task(op, make_context(run_id="r0"))["files"] == []  # the sequence has not started
    _put(moto_endpoint, s3_bucket, "feed/orders_20260101000000.json", body % 1)
    run_task(op, make_context(run_id="r1"))
    expected = (
        "no next file after feed/orders_20260101000000.json "
        "(expected feed/orders_<timestamp after 20260101000000>.json); to restart, configure a new "
        "import: set starting_file to the next file"
    )
    with pytest.raises(AirflowFailException, match=expected.replace("(", r"\(").replace(")", r"\)")):
        run_task(op, make_context(run_id="r2"))
    assert JobState("s3_import").get("continuous_stopped")["after"] == "feed/orders_20260101000000.json"
    # stopped: a file arriving later is not read, by this run or a retry of the one that stopped
    _put(moto_endpoint, s3_bucket, "feed/orders_20260102000000.json", body % 2)
    _put(moto_endpoint, s3_bucket, "feed/orders_20260103000000.json", body % 3)
    for run_id in ("r2", "r3"):
        with pytest.raises(AirflowSkipException, match="Continuous import stopped: no next file"):
            run_task(op, make_context(run_id=run_id))
    assert _ns(lytics_env) == [1]
    # a new configuration (the next Starting File) restarts the sequence there
    restarted = _op(
        s3_bucket,
        prefix="feed/orders",
        file_type="json",
        continuous=True,
        starting_file="orders_20260103000000.json",
    )
    report = run_task(restarted, make_context(run_id="r4"))
    assert report["files"] == ["feed/orders_20260103000000.json"] and _ns(lytics_env) == [1, 3]
    assert JobState("s3_import").get("continuous_stopped") is None


def test_selected_fields_only_reach_the_stream_and_missing_ones_are_reported(
    lytics_env, s3_bucket, moto_endpoint, capfd
):
    _put(moto_endpoint, s3_bucket, "drops/new-users-a.csv", _csv(range(3)))
    _put(moto_endpoint, s3_bucket, "drops/new-users-b.csv", b"email,city\r\nb@example.com,Lyon\r\n")
    report = run_task(_op(s3_bucket, fields=["email", "n"]), make_context())
    assert lytics_env.collected("s3_users") == [
        *({"email": f"u{i}@example.com", "n": str(i)} for i in range(3)),
        {"email": "b@example.com"},
    ]
    assert report["fields_found"] == {
        "drops/new-users-a.csv": ["email", "n", "city"],
        "drops/new-users-b.csv": ["email", "city"],
    }
    assert report["missing_fields"] == {"drops/new-users-b.csv": ["n"]}
    assert "drops/new-users-b.csv has no field n of the selected fields" in capfd.readouterr().out

    lines = [{"id": 1, "n": 5, "extra": "x"}, {"other": True}, {"n": 6}]
    _put(moto_endpoint, s3_bucket, "json/e.json", "".join(json.dumps(r) + "\n" for r in lines).encode())
    json_op = _op(s3_bucket, prefix="json/", file_type="json", fields=["id", "n"], job_id="json_fields")
    report = run_task(json_op, make_context(run_id="r2"))
    assert lytics_env.collected("s3_users")[-2:] == [{"id": 1, "n": 5}, {"n": 6}]  # {"other"} has neither
    assert report["rows"] == 2 and report["missing_fields"] == {}
    assert report["fields_found"] == {"json/e.json": ["id", "n", "extra", "other"]}


def test_bad_since_names_the_format(lytics_env, s3_bucket):
    with pytest.raises(ValueError, match=r"since '31/01/2026' is not a date: use 'yyyy/mm/dd HH:MM/SS'"):
        run_task(_op(s3_bucket, since="31/01/2026"), make_context())
