# ruff: noqa: F811 - pytest fixtures imported from conftest_warehouse and azurite
"""Braze Import Activity: Users by Segment export files (ZIP of JSON lines) from S3 (moto) and
Azure Blob Storage (Azurite) into ``braze_users``: one segment's files only, bad lines in rejects,
resume after a failure mid-file, the next export on the next run."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from lytics_provider.files.ingest_operator import StorageFilesToLyticsOperator
from lytics_provider.jobs.operator_args import operator_kwargs
from lytics_provider.jobs.types.braze import BrazeImportJob
from lytics_provider.pipeline.http import ServiceError
from lytics_sandbox.faults import FaultRule
from tests.helpers import make_context, run_task
from tests.integration.azurite import Azurite, azurite  # noqa: F401 - session fixture
from tests.integration.conftest_warehouse import (  # noqa: F401 - fixtures
    lytics_env,
    moto_endpoint,
    s3_bucket,
    s3_client,
)

INCLUDE = Path(__file__).resolve().parents[2] / "include" / "jobs"
SEGMENT = "seg-0001"


def _users(start: int, stop: int) -> list[str]:
    return [
        json.dumps(
            {
                "external_id": f"user-{i}",
                "braze_id": f"b{i:04d}",
                "email": f"u{i}@example.com",
                "custom_attributes": {"plan": "gold"},
                "devices": [{"model": "Pixel", "os": "Android"}],
                "n": i,
            }
        )
        for i in range(start, stop)
    ]


def _zip(lines: list[str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("users.txt", "\n".join(lines) + "\n")
    return buffer.getvalue()


def _key(day: str, part: int, segment: str = SEGMENT) -> str:
    return f"segment-export/{segment}/{day}/6f1c-1764000000/part-{part}.zip"


def _importer(storage: str, bucket: str, **arguments: Any) -> StorageFilesToLyticsOperator:
    config = BrazeImportJob.model_validate(
        {"type": "braze_import", "storage": storage, "bucket": bucket, "segment_id": SEGMENT}
    )
    kwargs = operator_kwargs(
        config,
        StorageFilesToLyticsOperator,
        task_id="import",
        job_id=f"braze_{storage}",
        prefix=config.segment_prefix(),
        **arguments,
    )
    return StorageFilesToLyticsOperator(**kwargs)


def _ns(sandbox: Any) -> list[int]:
    return [r["n"] for r in sandbox.collected("braze_users")]


def test_users_by_segment_files_on_s3_land_once_across_a_kill_and_retry(
    lytics_env: Any, s3_bucket: str, moto_endpoint: str, tmp_path: Path
) -> None:
    s3 = s3_client(moto_endpoint)
    s3.put_object(Bucket=s3_bucket, Key=_key("2026-11-23", 0), Body=_zip([*_users(0, 20), "not json"]))
    time.sleep(0.01)
    s3.put_object(Bucket=s3_bucket, Key=_key("2026-11-23", 1), Body=_zip(_users(20, 40)))
    s3.put_object(Bucket=s3_bucket, Key=_key("2026-11-23", 0, "other-seg"), Body=_zip(_users(900, 910)))
    lytics_env.faults.add(FaultRule("5xx", path_regex="/collect/json/braze_users", after=5, times=None))
    with pytest.raises(ServiceError):
        run_task(_importer("s3", s3_bucket, batch_size=6), make_context())
    lytics_env.faults.clear()
    assert 20 < len(_ns(lytics_env)) < 40

    run_task(_importer("s3", s3_bucket, batch_size=6), make_context())
    assert _ns(lytics_env) == list(range(40))  # every user once, the other segment untouched
    first = lytics_env.collected("braze_users")[0]
    assert first["custom_attributes"] == {"plan": "gold"} and first["devices"][0]["model"] == "Pixel"
    rejects = next((tmp_path / "data").rglob("rejects_*part-0.zip.jsonl"))
    reject = json.loads(rejects.read_text())
    assert reject["reason"].startswith("malformed JSON") and reject["row_number"] == 21


def test_users_by_segment_files_on_azure_and_the_next_export(container_env: Any, lytics_env: Any) -> None:
    container = container_env
    container.upload_blob(_key("2026-11-23", 0), _zip(_users(0, 5)))
    report = run_task(_importer("azure_blob", container.container_name), make_context(run_id="r1"))
    assert report["files"] == [_key("2026-11-23", 0)] and _ns(lytics_env) == list(range(5))

    container.upload_blob(_key("2026-11-24", 0), _zip(_users(5, 8)))
    later = run_task(_importer("azure_blob", container.container_name), make_context(run_id="r2"))
    assert later["files"] == [_key("2026-11-24", 0)] and _ns(lytics_env) == list(range(8))


@pytest.fixture
def container_env(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Any:
    from azure.storage.blob import BlobServiceClient

    monkeypatch.setenv("AIRFLOW_CONN_WASB_DEFAULT", azurite.conn_json)
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    client = service.create_container("braze-exports")
    yield client
    client.delete_container()


def test_config_rules_and_example() -> None:
    from airflow.sdk import DAG
    from pydantic import ValidationError

    from lytics_provider.jobs.context import JobContext
    from lytics_provider.jobs.loader import load_job_file

    with pytest.raises(ValidationError, match="set either segment_id or prefix"):
        BrazeImportJob.model_validate(
            {"type": "braze_import", "bucket": "b", "segment_id": "s", "prefix": "x/"}
        )
    with pytest.raises(ValueError, match="storage 'ftp' is not supported"):
        StorageFilesToLyticsOperator(task_id="t", job_id="j", bucket="b", stream="s", storage="ftp")  # type: ignore[arg-type]
    config = load_job_file(INCLUDE / "braze_import_users.yaml")
    with DAG("braze_example", schedule=None) as dag:
        config.add_tasks(JobContext(dag, "braze_example", INCLUDE / "braze_import_users.yaml"))
    op = dag.task_dict["import"]
    assert (op.stream, op.storage, op.file_type) == ("braze_users", "s3", "json")
    assert op.prefix == "segment-export/0d1e2f3a-example/"
