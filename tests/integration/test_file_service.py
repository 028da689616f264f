"""Lytics File Service end to end on loopback: CSV export (none/gz/zip, PGP) and CSV/JSONL import."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from lytics_provider.operators.lytics import LyticsAudienceScanOperator
from lytics_provider.pipeline import pgp
from lytics_provider.pipeline.compression import open_decompressed
from lytics_provider.pipeline.writers import format_csv_value
from lytics_provider.transfers.lytics_to_sftp import LyticsFileServiceExportOperator
from lytics_provider.transfers.sftp_to_lytics import SFTPToLyticsOperator
from lytics_sandbox.lytics import LyticsSandbox
from tests.helpers import make_context, run_task

DATA = Path(__file__).resolve().parents[1] / "data"
PUBLIC = (DATA / "pgp_test_public.asc").read_text()
PRIVATE = (DATA / "pgp_test_private.asc").read_text()
PASSPHRASE = "correct horse battery"
FIELDS = ["email", "first_name", "segments", "scores", "score_engagement"]


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, lytics_sandbox: LyticsSandbox, sftp_server: Any
) -> Any:
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIRFLOW_CONN_FS_SFTP", sftp_server.conn_json)
    lytics = {
        "conn_type": "lytics",
        "host": lytics_sandbox.base_url,
        "password": "sandbox-token",
        "extra": {"max_attempts": 1},
    }
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", json.dumps(lytics))
    keys = {"public_key": PUBLIC, "private_key": PRIVATE}
    monkeypatch.setenv(
        "AIRFLOW_CONN_FS_PGP", json.dumps({"conn_type": "lytics_pgp", "password": PASSPHRASE, "extra": keys})
    )
    for folder in ("exports", "incoming"):
        (sftp_server.root / folder).mkdir()
    return sftp_server


# -- export -------------------------------------------------------------------------------------


def export(context: dict[str, Any], fields: list[str] | None, **kwargs: Any) -> dict[str, Any]:
    scan = LyticsAudienceScanOperator(
        task_id="scan", audience="newsletter", job_id="fs_export", fields=fields
    )
    run_task(scan, context)
    deliver = LyticsFileServiceExportOperator(
        task_id="deliver",
        job_id="fs_export",
        sftp_conn_id="fs_sftp",
        folder="/exports",
        fields=fields,
        **kwargs,
    )
    return run_task(deliver, context)


def expected_rows(sandbox: LyticsSandbox, columns: list[str]) -> list[list[str]]:
    return sorted(
        [format_csv_value(member.get(c)) for c in columns]
        for member in sandbox.expected_members("newsletter")
    )


@pytest.mark.parametrize(
    ("compression", "encrypt", "name"),
    [
        ("none", False, "lytics_newsletter_20261123000000.csv"),
        ("gz", False, "lytics_newsletter_20261123000000.csv.gz"),
        ("zip", False, "lytics_newsletter_20261123000000.zip"),
        ("gz", True, "lytics_newsletter_20261123000000.csv.gz.pgp"),
    ],
)
def test_export_file_name_compression_and_encryption(
    env: Any, lytics_sandbox: LyticsSandbox, tmp_path: Path, compression: str, encrypt: bool, name: str
) -> None:
    report = export(
        make_context(), FIELDS, compression=compression, pgp_conn_id="fs_pgp" if encrypt else None
    )
    assert sorted(p.name for p in (env.root / "exports").iterdir()) == [name]
    remote = env.root / "exports" / name
    if encrypt:
        assert b"@example.com" not in remote.read_bytes()
        plain = tmp_path / "decrypted"
        pgp.decrypt_file(PRIVATE, PASSPHRASE, remote, plain)
        remote = plain
    with open_decompressed(remote, compression) as handle:
        rows = list(csv.reader(io.StringIO(handle.read().decode("utf-8"), newline="")))
    assert rows[0] == FIELDS
    assert sorted(rows[1:]) == expected_rows(lytics_sandbox, FIELDS)
    assert report["rows"] == lytics_sandbox.audience("newsletter").size
    assert report["file_name"] == name and report["bytes"] == (env.root / "exports" / name).stat().st_size


def test_export_of_all_fields_uses_the_schema_as_header(env: Any, lytics_sandbox: LyticsSandbox) -> None:
    report = export(make_context(), None)
    rows = list(csv.reader((env.root / "exports" / report["file_name"]).open(encoding="utf-8", newline="")))
    schema = [field["id"] for field in lytics_sandbox.account.schema()]
    assert rows[0] == schema
    assert sorted(rows[1:]) == expected_rows(lytics_sandbox, schema)


# -- import -------------------------------------------------------------------------------------

GOOD_CSV = [{"email": f"csv{i}@example.com", "plan": "gold" if i % 2 else "free"} for i in range(40)]
GOOD_JSONL = [{"email": f"json{i}@example.com", "tags": ["a", "b"], "n": i} for i in range(30)]


def write_csv_file(path: Path, rows: list[dict[str, Any]], bad_at: int | None = None) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["email", "plan"])
    for i, row in enumerate(rows):
        if i == bad_at:
            writer.writerow(["broken@example.com", "gold", "extra column"])
        writer.writerow([row["email"], row["plan"]])
    path.write_text(buffer.getvalue(), encoding="utf-8")


def write_jsonl_gz(path: Path, rows: list[dict[str, Any]]) -> None:
    lines = [json.dumps(row) for row in rows]
    lines.insert(3, '{"email": "half@example.com", ')
    lines.insert(7, "[1, 2, 3]")
    lines.insert(9, json.dumps({"email": "huge@example.com", "blob": "x" * 17_000}))
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))


def set_mtime(path: Path, mtime: int) -> None:
    os.utime(path, (mtime, mtime))


def importer(**kwargs: Any) -> SFTPToLyticsOperator:
    options: dict[str, Any] = {
        "task_id": "import",
        "job_id": "fs_import",
        "stream": "file_contacts",
        "sftp_conn_id": "fs_sftp",
        "folder": "/incoming",
    }
    options.update(kwargs)
    return SFTPToLyticsOperator(**options)


def test_csv_import_plain_and_pgp_with_rejects_and_no_reimport(
    env: Any, lytics_sandbox: LyticsSandbox, tmp_path: Path
) -> None:
    incoming = env.root / "incoming"
    write_csv_file(incoming / "contacts_1.csv", GOOD_CSV[:20], bad_at=5)
    plain = tmp_path / "contacts_2.csv"
    write_csv_file(plain, GOOD_CSV[20:])
    pgp.encrypt_file(PUBLIC, plain, incoming / "contacts_2.csv.pgp")
    (incoming / "notes.txt").write_text("not matched by the pattern")
    (incoming / ".contacts_3.csv.part").write_text("email,plan\nuploading@example.com,x\n")
    set_mtime(incoming / "contacts_1.csv", 1_700_000_000)
    set_mtime(incoming / "contacts_2.csv.pgp", 1_700_000_100)

    report = run_task(importer(pattern="contacts_*", pgp_conn_id="fs_pgp"), make_context())

    assert [f["name"] for f in report["files"]] == ["contacts_1.csv", "contacts_2.csv.pgp"]
    assert lytics_sandbox.collected("file_contacts") == GOOD_CSV
    assert (report["rows"], report["rejected"], report["files_imported"]) == (40, 1, 2)
    rejects = [json.loads(line) for line in Path(report["rejects_files"][0]).read_text().splitlines()]
    assert rejects == [
        {
            "reason": "wrong number of columns: expected 2, got 3",
            "row_number": 7,
            "id": None,
            "record": ["broken@example.com", "gold", "extra column"],
        }
    ]

    again = run_task(
        importer(pattern="contacts_*", pgp_conn_id="fs_pgp"), make_context(run_id="scheduled__2")
    )
    assert again["files_imported"] == 0 and again["files_skipped"] == 2
    assert lytics_sandbox.collected("file_contacts") == GOOD_CSV


def test_jsonl_gz_import_rejects_bad_lines_and_sends_the_rest_once(
    env: Any, lytics_sandbox: LyticsSandbox
) -> None:
    write_jsonl_gz(env.root / "incoming" / "events_1.jsonl.gz", GOOD_JSONL)
    report = run_task(
        importer(pattern="events_*.jsonl*", format="jsonl", timestamp_field="ts"), make_context()
    )
    assert lytics_sandbox.collected("file_contacts") == GOOD_JSONL
    rejects = [json.loads(line) for line in Path(report["rejects_files"][0]).read_text().splitlines()]
    reasons = [(r["row_number"], r["reason"].split(":")[0]) for r in rejects]
    assert reasons == [
        (4, "malformed JSON"),
        (8, "not a JSON object (a list)"),
        (10, "record over the 16 KB Lytics limit"),
    ]
    huge = len(json.dumps({"email": "huge@example.com", "blob": "x" * 17_000}, separators=(",", ":")))
    assert rejects[2]["reason"].endswith(f": {huge} bytes")
    assert rejects[2]["id"] == "huge@example.com"
    assert all(r["query"].get("timestamp_field") == "ts" for r in lytics_sandbox.collect_requests)


def test_a_failure_mid_file_resumes_after_the_last_acknowledged_batch(
    env: Any, lytics_sandbox: LyticsSandbox
) -> None:
    rows = [{"email": f"bulk{i}@example.com", "plan": "p" * 200} for i in range(300)]
    write_csv_file(env.root / "incoming" / "contacts_big.csv", rows)
    lytics_sandbox.faults.add("5xx", path_regex="/collect/json", after=2, times=1)
    context = make_context()
    with pytest.raises(Exception, match="500"):
        run_task(importer(batch_bytes=16_384), context)
    sent_before_failure = len(lytics_sandbox.collected("file_contacts"))
    assert 0 < sent_before_failure < len(rows)

    report = run_task(importer(batch_bytes=16_384), context)
    assert lytics_sandbox.collected("file_contacts") == rows
    assert report["files_imported"] == 1 and report["rows"] == len(rows)


def test_dry_run_import_sends_and_records_nothing(env: Any, lytics_sandbox: LyticsSandbox) -> None:
    write_csv_file(env.root / "incoming" / "contacts_1.csv", GOOD_CSV, bad_at=0)
    report = run_task(importer(), make_context(params={"dry_run": True}))
    assert (report["rows"], report["rejected"], report["files_imported"]) == (40, 1, 0)
    assert lytics_sandbox.collected("file_contacts") == [] and lytics_sandbox.collect_requests == []
    real = run_task(importer(), make_context(run_id="manual__2"))
    assert real["files_imported"] == 1 and lytics_sandbox.collected("file_contacts") == GOOD_CSV


def test_dry_run_lists_the_fields_and_only_selected_fields_are_imported(
    env: Any, lytics_sandbox: LyticsSandbox, capfd: pytest.CaptureFixture[str]
) -> None:
    incoming = env.root / "incoming"
    write_csv_file(incoming / "contacts_1.csv", GOOD_CSV[:5])
    write_jsonl_gz(incoming / "events_1.jsonl.gz", [{"email": "j@example.com", "n": 1, "tags": ["a"]}])
    dry = run_task(importer(pattern="contacts_*"), make_context(params={"dry_run": True}))
    assert dry["files"][0]["fields"] == ["email", "plan"] and lytics_sandbox.collect_requests == []

    report = run_task(importer(pattern="contacts_*", fields=["email", "city"]), make_context(run_id="r1"))
    assert lytics_sandbox.collected("file_contacts") == [{"email": row["email"]} for row in GOOD_CSV[:5]]
    assert report["missing_fields"] == {"contacts_1.csv": ["city"]}
    assert "contacts_1.csv has no field city of the selected fields" in capfd.readouterr().out

    # the 16 KB limit counts what is sent: the huge record's blob is not selected
    jsonl = importer(pattern="events_*", format="jsonl", fields=["email", "tags"], job_id="fs_json")
    report = run_task(jsonl, make_context(run_id="r2"))
    assert (report["missing_fields"], report["rejected"]) == ({}, 2)
    assert report["files"][0]["fields"] == ["email", "n", "tags", "blob"]
    assert lytics_sandbox.collected("file_contacts")[-2:] == [
        {"email": "j@example.com", "tags": ["a"]},
        {"email": "huge@example.com"},
    ]


def test_an_unreadable_file_fails_the_task_after_importing_the_others(
    env: Any, lytics_sandbox: LyticsSandbox
) -> None:
    incoming = env.root / "incoming"
    (incoming / "contacts_0.csv").write_text("email,email\na,b\n")
    write_csv_file(incoming / "contacts_1.csv", GOOD_CSV)
    set_mtime(incoming / "contacts_0.csv", 1_700_000_000)
    with pytest.raises(
        Exception, match=r"contacts_0\.csv: the header row has empty or repeated column names"
    ):
        run_task(importer(pattern="contacts_*.csv"), make_context())
    assert lytics_sandbox.collected("file_contacts") == GOOD_CSV


# -- job configs ---------------------------------------------------------------------------------

INCLUDE = Path(__file__).resolve().parents[2] / "include"


@pytest.mark.parametrize(
    ("file", "tasks"),
    [("file_service_export.yaml", {"scan", "deliver", "report"}), ("file_service_import.yaml", {"import"})],
)
def test_example_jobs_load_and_build(file: str, tasks: set[str]) -> None:
    from airflow.sdk import DAG

    from lytics_provider.jobs.context import JobContext
    from lytics_provider.jobs.loader import load_job_file

    config = load_job_file(INCLUDE / "jobs" / file)
    with DAG("fs_example", schedule=None) as dag:
        config.add_tasks(JobContext(dag, "fs_example", INCLUDE / "jobs" / file))
    assert set(dag.task_dict) == tasks


def test_import_pattern_must_not_hold_a_path() -> None:
    from pydantic import ValidationError

    from lytics_provider.jobs.types.files import FileServiceImportJob

    with pytest.raises(ValidationError, match="put the directory in `folder`"):
        FileServiceImportJob.model_validate(
            {"type": "file_service_import", "sftp_conn_id": "s", "stream": "x", "pattern": "in/*.csv"}
        )
    with pytest.raises(ValidationError, match="timestamp_field 'updated_at' is not in fields"):
        FileServiceImportJob.model_validate(
            {
                "type": "file_service_import",
                "sftp_conn_id": "s",
                "stream": "x",
                "fields": ["email"],
                "timestamp_field": "updated_at",
            }
        )
