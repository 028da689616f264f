"""Responsys: Import Activity Data from an SFTP server with a private key (and PGP) into
``responsys_events``: Connect event files only (ready and count files skipped), bad rows in
rejects, resume after a failure mid-file, each file once, a new file on the next run."""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lytics_provider.jobs.context import JobContext
from lytics_provider.jobs.loader import load_job_file
from lytics_provider.jobs.types.responsys import ResponsysImportJob
from lytics_provider.pipeline import http, pgp
from lytics_provider.pipeline.http import ServiceError
from lytics_provider.transfers.sftp_to_lytics import SFTPToLyticsOperator
from tests.helpers import lytics_conn, make_context, run_task

DATA = Path(__file__).resolve().parents[1] / "data"
PUBLIC = (DATA / "pgp_test_public.asc").read_text()
PRIVATE = (DATA / "pgp_test_private.asc").read_text()
PASSPHRASE = "correct horse battery"
INCLUDE = Path(__file__).resolve().parents[2] / "include" / "jobs"
HEADER = "EVENT_TYPE_ID,ACCOUNT_ID,RIID,CUSTOMER_ID,EMAIL_ADDRESS,EVENT_CAPTURED_DT"


@pytest.fixture(scope="session")
def responsys_sftp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """An SFTP server that accepts only one client key (the authorization's Private Key)."""
    import asyncssh

    from lytics_sandbox.sftp import SFTPSandbox

    key = asyncssh.generate_private_key("ssh-rsa", key_size=2048)
    root = tmp_path_factory.mktemp("responsys_sftp")
    server = SFTPSandbox(
        root, username="cli", password=None, authorized_client_keys=[key.export_public_key().decode()]
    )
    host, port = server.start()
    conn = {
        "conn_type": "sftp",
        "host": host,
        "port": port,
        "login": "cli",
        "extra": {"private_key": key.export_private_key("openssh").decode(), "no_host_key_check": True},
    }
    try:
        yield {"root": root, "conn": json.dumps(conn)}
    finally:
        server.stop()


@pytest.fixture
def env(
    responsys_sftp: dict[str, Any],
    lytics_sandbox: Any,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> Path:
    """A fresh folder on the session's server (returned), a private data directory, the connections."""
    monkeypatch.setenv("AIRFLOW_CONN_RESPONSYS_SFTP", responsys_sftp["conn"])
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics_sandbox.base_url))
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(http.RetryPolicy, "backoff", lambda self, attempt: 0.01)
    keys = {"public_key": PUBLIC, "private_key": PRIVATE}
    monkeypatch.setenv(
        "AIRFLOW_CONN_RESPONSYS_PGP",
        json.dumps({"conn_type": "lytics_pgp", "password": PASSPHRASE, "extra": keys}),
    )
    folder = responsys_sftp["root"] / request.node.name[:40]
    folder.mkdir()
    return folder


def _events(start: int, stop: int, bad_at: int | None = None) -> str:
    rows = [HEADER]
    for i in range(start, stop):
        row = f"4,12345,{i},C{i},u{i}@example.com,23-NOV-2026 06:00:{i % 60:02d}"
        rows.append(row + (",EXTRA" if i == bad_at else ""))
    return "\n".join(rows) + "\n"


def _write(path: Path, text: str, mtime: int) -> None:
    path.write_text(text)
    os.utime(path, (mtime, mtime))


def _importer(folder: Path, **arguments: Any) -> SFTPToLyticsOperator:
    """The operator the job type builds (``arguments``: operator-only settings such as batch_bytes)."""
    config = ResponsysImportJob.model_validate(
        {
            "type": "responsys_import",
            "sftp_conn_id": "responsys_sftp",
            "folder": f"/{folder.name}",
            "pgp_conn_id": "responsys_pgp",
            "timestamp_field": "EVENT_CAPTURED_DT",
        }
    )
    from lytics_provider.jobs.operator_args import operator_kwargs

    kwargs = operator_kwargs(config, SFTPToLyticsOperator, task_id="import", job_id="responsys", **arguments)
    return SFTPToLyticsOperator(**kwargs)


def _riids(sandbox: Any) -> list[int]:
    return [int(r["RIID"]) for r in sandbox.collected("responsys_events")]


def test_event_files_with_pgp_and_zip_land_once_across_a_kill_and_retry(
    env: Path, lytics_sandbox: Any, tmp_path: Path
) -> None:
    _write(env / "12345_SENT_20261123_000000.txt", _events(0, 20, bad_at=7), 1_764_000_000)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("12345_CLICK_20261123_060000.txt", _events(100, 160))
    plain = env.parent / "click.zip"
    plain.write_bytes(archive.getvalue())
    pgp.encrypt_file(PUBLIC, plain, env / "12345_CLICK_20261123_060000.zip.gpg")
    os.utime(env / "12345_CLICK_20261123_060000.zip.gpg", (1_764_000_100, 1_764_000_100))
    _write(env / "12345_CLICK_20261123_060000.ready", "", 1_764_000_200)
    _write(env / "12345_CLICK_20261123_060000.cnt", "60\n", 1_764_000_200)
    _write(env / "notes.txt", "not an event file", 1_764_000_200)

    context = make_context()
    lytics_sandbox.faults.add("5xx", path_regex="/collect/json/responsys_events", after=3, times=None)
    with pytest.raises(ServiceError):
        run_task(_importer(env, batch_bytes=2048), context)  # killed inside the second file
    lytics_sandbox.faults.clear()
    sent = len(_riids(lytics_sandbox))
    assert 19 < sent < 79

    report = run_task(_importer(env, batch_bytes=2048), context)
    assert _riids(lytics_sandbox) == [n for n in range(20) if n != 7] + list(range(100, 160))
    assert [f["name"] for f in report["files"]] == ["12345_CLICK_20261123_060000.zip.gpg"]
    assert all(r["query"]["timestamp_field"] == "EVENT_CAPTURED_DT" for r in lytics_sandbox.collect_requests)
    rejects_file = next((tmp_path / "data").rglob("rejects-12345_SENT_20261123_000000.txt.jsonl"))
    reject = json.loads(rejects_file.read_text().splitlines()[0])
    assert reject["reason"] == "wrong number of columns: expected 6, got 7" and reject["record"][2] == "7"

    _write(env / "12345_OPEN_20261123_120000.txt", _events(200, 203), 1_764_000_300)
    later = run_task(_importer(env), make_context(run_id="scheduled__2"))
    assert [f["name"] for f in later["files"]] == ["12345_OPEN_20261123_120000.txt"]
    assert _riids(lytics_sandbox)[-3:] == [200, 201, 202] and len(_riids(lytics_sandbox)) == 82


def test_example_config_builds_with_the_seed_defaults() -> None:
    from airflow.sdk import DAG

    config = load_job_file(INCLUDE / "responsys_import_activity.yaml")
    assert config.stream == "responsys_events" and config.every_hours == 6
    with DAG("responsys_example", schedule=None) as dag:
        config.add_tasks(JobContext(dag, "responsys_example", INCLUDE / "responsys_import_activity.yaml"))
    op = dag.task_dict["import"]
    assert (op.stream, op.pgp_conn_id, op.exclude) == (
        "responsys_events",
        "responsys_pgp",
        ["*.ready", "*.cnt", "*.count"],
    )
