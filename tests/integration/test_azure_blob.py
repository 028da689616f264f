# ruff: noqa: F811 - pytest fixtures imported from conftest_warehouse and azurite
"""Microsoft Azure Blob Storage on Azurite: audience exports (JSON, CSV), the new-events export and
the CSV import (rejects, resume after a failure mid-file, continuous ``timestamp.csv`` sequence)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from lytics_provider.files.export_events import EventsPosition, download_new_events
from lytics_provider.files.transports.azure_blob import AzureBlobTransport
from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.pipeline.http import ServiceError
from lytics_provider.pipeline.workarea import JobState
from lytics_provider.transfers.azure_blob_to_lytics import AzureBlobToLyticsOperator
from lytics_provider.transfers.lytics_to_azure_blob import (
    EVENTS_POSITION_KEY,
    LyticsStreamToAzureBlobOperator,
    LyticsToAzureBlobOperator,
)
from lytics_sandbox.faults import FaultRule
from tests.helpers import make_context, run_task
from tests.integration.azurite import Azurite, azurite  # noqa: F401 - session fixture
from tests.integration.conftest_warehouse import lytics_env, scanned_context  # noqa: F401 - fixtures

INCLUDE = Path(__file__).resolve().parents[2] / "include" / "jobs"


@pytest.fixture
def container(azurite: Azurite, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Any:
    """A fresh container and a ``wasb_default`` connection holding Azurite's connection string."""
    from azure.storage.blob import BlobServiceClient

    monkeypatch.setenv("AIRFLOW_CONN_WASB_DEFAULT", azurite.conn_json)
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    name = request.node.name.replace("_", "-")[:50].strip("-").lower()
    client = service.create_container(name)
    yield client
    client.delete_container()


def _blobs(container: Any) -> dict[str, bytes]:
    return {b.name: container.download_blob(b.name).readall() for b in container.list_blobs()}


def _put(container: Any, name: str, body: bytes) -> None:
    container.upload_blob(name, body, overwrite=True)


# -- audience exports -----------------------------------------------------------------------------
def test_audience_export_json_and_csv_with_user_fields(container: Any, lytics_env: Any) -> None:
    context = scanned_context("high_value")
    fields = ["_uid", "email", "first_name"]
    expected = [{k: m[k] for k in fields if k in m} for m in lytics_env.expected_members("high_value")]
    name = container.container_name
    as_json = LyticsToAzureBlobOperator(
        task_id="deliver", job_id="job", container=name, directory="out", fields=fields, file_format="jsonl"
    )
    report = run_task(as_json, context)
    blobs = _blobs(container)
    assert list(blobs) == ["out/lytics_high_value_20261123T000000Z.json"]
    assert [
        json.loads(line) for line in blobs["out/lytics_high_value_20261123T000000Z.json"].splitlines()
    ] == expected
    assert report["target"] == f"wasb://{name}/out/lytics_high_value_20261123T000000Z.json"
    assert report["rows"] == len(expected)

    as_csv = LyticsToAzureBlobOperator(task_id="deliver", job_id="job", container=name, fields=fields)
    run_task(as_csv, context)
    rows = list(
        csv.DictReader(io.StringIO(_blobs(container)["lytics_high_value_20261123T000000Z.csv"].decode()))
    )
    assert [r["_uid"] for r in rows] == [m["_uid"] for m in expected]
    before = _blobs(container)
    run_task(as_csv, context)  # a retried task replaces the blob with the same bytes
    assert _blobs(container) == before


# -- events export --------------------------------------------------------------------------------
def _events(start: int, stop: int) -> list[dict[str, Any]]:
    return [{"email": f"e{i}@example.com", "event": "view", "n": i} for i in range(start, stop)]


def _event_rows(blob: bytes) -> list[int]:
    return [int(r["n"]) for r in csv.DictReader(io.StringIO(blob.decode()))]


def test_events_export_sends_only_new_events_and_commits_after_delivery(
    container: Any, lytics_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    lytics_env.add_stream_events("web_events", _events(0, 40))
    op = LyticsStreamToAzureBlobOperator(
        task_id="export", job_id="events", stream="web_events", container=container.container_name
    )
    first = run_task(op, make_context(run_id="r1"))
    assert first["rows"] == 40 and first["since_position"] is None
    assert _event_rows(_blobs(container)["lytics_web_events_events_20261123T000000Z.csv"]) == list(range(40))

    lytics_env.add_stream_events("web_events", [{**e, "extra": "x"} for e in _events(40, 55)])
    real_upload = AzureBlobTransport.upload

    def killed(self: AzureBlobTransport, local: Path, name: str) -> Any:
        raise ConnectionResetError("worker killed during the upload")

    monkeypatch.setattr(AzureBlobTransport, "upload", killed)
    import pendulum

    day2 = pendulum.datetime(2026, 11, 24, tz="UTC")
    with pytest.raises(ConnectionResetError):
        run_task(op, make_context(run_id="r2", logical_date=day2))
    assert JobState("events").get(EVENTS_POSITION_KEY) == first["position"]  # not moved
    monkeypatch.setattr(AzureBlobTransport, "upload", real_upload)

    second = run_task(op, make_context(run_id="r2", logical_date=day2))
    blob = _blobs(container)["lytics_web_events_events_20261124T000000Z.csv"]
    assert _event_rows(blob) == list(range(40, 55)) and blob.startswith(b"email,event,n,extra\r\n")
    assert second["rows"] == 15

    third = run_task(op, make_context(run_id="r3", logical_date=pendulum.datetime(2026, 11, 25, tz="UTC")))
    assert third["rows"] == 0 and len(_blobs(container)) == 2  # nothing new, nothing uploaded


def test_new_events_across_page_boundaries(lytics_env: Any, tmp_path: Path) -> None:
    lytics_env.add_stream_events("clicks", _events(0, 20))
    hook = LyticsHook()
    first = download_new_events(hook, "clicks", tmp_path, None, limit=7)
    assert first.count == 20 and first.position == EventsPosition("14", 6, 7)
    lytics_env.add_stream_events("clicks", _events(20, 25))
    second = download_new_events(hook, "clicks", tmp_path, first.position)
    assert [json.loads(line)["n"] for line in second.path.read_text().splitlines()] == list(range(20, 25))
    assert second.position == EventsPosition("21", 4, 7)
    assert download_new_events(hook, "clicks", tmp_path, second.position).count == 0


# -- import ---------------------------------------------------------------------------------------
def _csv(numbers: range, extra_at: int | None = None) -> bytes:
    lines = ["email,n,city"]
    for i in numbers:
        lines.append(f"u{i}@example.com,{i},Paris" + (",EXTRA" if i == extra_at else ""))
    return ("\r\n".join(lines) + "\r\n").encode()


def _ns(sandbox: Any, stream: str = "azure_users") -> list[int]:
    return [int(r["n"]) for r in sandbox.collected(stream)]


def _importer(container: Any, **kwargs: Any) -> AzureBlobToLyticsOperator:
    kwargs.setdefault("job_id", "azure_import")
    return AzureBlobToLyticsOperator(
        task_id="import", container=container.container_name, stream="azure_users", **kwargs
    )


def test_import_rejects_bad_rows_and_resumes_after_a_failure_mid_file(
    container: Any, lytics_env: Any
) -> None:
    _put(container, "in/users-1.csv", _csv(range(0, 30), extra_at=12))
    _put(container, "elsewhere/users.csv", _csv(range(900, 905)))
    lytics_env.faults.add(FaultRule("5xx", path_regex="/collect/json/azure_users", after=2, times=None))
    with pytest.raises(ServiceError):
        run_task(_importer(container, prefix="in/", batch_size=8), make_context())
    lytics_env.faults.clear()
    assert JobState("azure_import").get("in_progress") == {"key": "in/users-1.csv", "rows_done": 17}

    report = run_task(_importer(container, prefix="in/", batch_size=8), make_context())
    assert _ns(lytics_env) == [n for n in range(30) if n != 12]  # each row once across the retry
    assert report["files"] == ["in/users-1.csv"] and report["rejected"] == 1
    rejects = next((JobState("azure_import").path.parent / "runs").rglob("rejects_in_users-1.csv.jsonl"))
    line = json.loads(rejects.read_text().splitlines()[0])
    assert line["reason"] == "too many cells: 4 for 3 header columns" and line["row_number"] == 13
    assert run_task(_importer(container, prefix="in/"), make_context(run_id="r2"))["files"] == []


def test_continuous_import_reads_timestamp_csv_in_order_and_picks_up_the_next_file(
    container: Any, lytics_env: Any
) -> None:
    _put(container, "feed/1764288000.csv", _csv(range(10, 13)))
    _put(container, "feed/1764201600.csv", _csv(range(0, 3)))
    _put(container, "feed/latest.csv", _csv(range(99, 100)))
    op = _importer(container, prefix="feed/", continuous=True)
    first = run_task(op, make_context(run_id="r1"))
    assert _ns(lytics_env) == [0, 1, 2, 10, 11, 12]  # timestamp order, not upload order
    assert first["skipped"] == ["feed/latest.csv: not named timestamp.csv (continuous import)"]
    assert run_task(op, make_context(run_id="r2"))["rows"] == 0  # no next file: nothing, no error

    _put(container, "feed/1764374400.csv", _csv(range(20, 22)))
    third = run_task(op, make_context(run_id="r3"))
    assert third["files"] == ["feed/1764374400.csv"] and _ns(lytics_env)[-2:] == [20, 21]


def test_missing_container_names_the_fix(azurite: Azurite, lytics_env: Any, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_WASB_DEFAULT", azurite.conn_json)
    op = AzureBlobToLyticsOperator(task_id="import", job_id="x", container="nope", stream="s")
    with pytest.raises(FileNotFoundError, match="container 'nope' does not exist"):
        run_task(op, make_context())


# -- job configs ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("file", "tasks"),
    [
        ("azure_blob_export_json.yaml", {"scan", "deliver", "report"}),
        ("azure_blob_export_csv.yaml", {"scan", "deliver", "report"}),
        ("azure_blob_events_export.yaml", {"export"}),
        ("azure_blob_import.yaml", {"import"}),
    ],
)
def test_example_jobs_load_and_build(file: str, tasks: set[str]) -> None:
    from airflow.sdk import DAG

    from lytics_provider.jobs.context import JobContext
    from lytics_provider.jobs.loader import load_job_file

    config = load_job_file(INCLUDE / file)
    with DAG("azure_example", schedule=None) as dag:
        config.add_tasks(JobContext(dag, "azure_example", INCLUDE / file))
    assert set(dag.task_dict) == tasks
    if "deliver" in tasks:
        deliver = dag.task_dict["deliver"]
        assert deliver.file_format == ("jsonl" if "json" in file else "csv")
        assert deliver.fields == config.fields and deliver.compression == "none"


def test_bad_container_name_is_refused_with_the_rule() -> None:
    from pydantic import ValidationError

    from lytics_provider.jobs.types.azure_blob import AzureBlobImportJob

    with pytest.raises(ValidationError, match="3-63 lowercase letters"):
        AzureBlobImportJob.model_validate(
            {"type": "azure_blob_import", "container": "Bad_Name", "stream": "s"}
        )


def test_csv_export_encrypted_for_the_pgp_key(
    container: Any, lytics_env: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from lytics_provider.pipeline import pgp

    data = Path(__file__).resolve().parents[1] / "data"
    keys = {
        "public_key": (data / "pgp_test_public.asc").read_text(),
        "private_key": (data / "pgp_test_private.asc").read_text(),
    }
    monkeypatch.setenv("AIRFLOW_CONN_AZURE_PGP", json.dumps({"conn_type": "lytics_pgp", "extra": keys}))
    context = scanned_context("high_value")
    op = LyticsToAzureBlobOperator(
        task_id="deliver",
        job_id="job",
        container=container.container_name,
        fields=["_uid", "email"],
        pgp_conn_id="azure_pgp",
    )
    report = run_task(op, context)
    name = "lytics_high_value_20261123T000000Z.csv.pgp"
    assert report["file_name"] == name
    (tmp_path / name).write_bytes(_blobs(container)[name])
    pgp.decrypt_file(keys["private_key"], "correct horse battery", tmp_path / name, tmp_path / "plain.csv")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "plain.csv").read_text())))
    assert [r["_uid"] for r in rows] == [m["_uid"] for m in lytics_env.expected_members("high_value")]


def test_events_dry_run_counts_and_moves_nothing(container: Any, lytics_env: Any) -> None:
    lytics_env.add_stream_events("web_events", _events(0, 12))
    op = LyticsStreamToAzureBlobOperator(
        task_id="export", job_id="events_dry", stream="web_events", container=container.container_name
    )
    report = run_task(op, make_context(params={"dry_run": True}))
    assert (report["dry_run"], report["rows"]) == (True, 12)
    assert _blobs(container) == {} and JobState("events_dry").get(EVENTS_POSITION_KEY) is None
