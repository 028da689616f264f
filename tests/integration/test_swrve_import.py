# ruff: noqa: F811 - pytest fixtures imported from conftest_warehouse
"""Swrve Import Activity Data from the raw data export on S3 (moto) into ``swrve_activity``:
gzip JSON lines, bad lines in rejects, resume after a failure mid-file, a new file next run."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path
from typing import Any

import pytest

from lytics_provider.jobs.operator_args import operator_kwargs
from lytics_provider.jobs.types.swrve import SwrveImportJob
from lytics_provider.pipeline.http import ServiceError
from lytics_provider.transfers.s3_to_lytics import S3ToLyticsOperator
from lytics_sandbox.faults import FaultRule
from tests.helpers import make_context, run_task
from tests.integration.conftest_warehouse import (  # noqa: F401 - fixtures
    lytics_env,
    moto_endpoint,
    s3_bucket,
    s3_client,
)

INCLUDE = Path(__file__).resolve().parents[2] / "include" / "jobs"


def _events(start: int, stop: int) -> list[str]:
    return [
        json.dumps({"user": f"u{i}", "type": "event", "time": 1764000000 + i, "name": "purchase", "n": i})
        for i in range(start, stop)
    ]


def _put(endpoint: str, bucket: str, key: str, lines: list[str]) -> None:
    body = gzip.compress(("\n".join(lines) + "\n").encode())
    s3_client(endpoint).put_object(Bucket=bucket, Key=key, Body=body)
    time.sleep(0.01)


def _importer(bucket: str, **arguments: Any) -> S3ToLyticsOperator:
    config = SwrveImportJob.model_validate(
        {"type": "swrve_import", "bucket": bucket, "prefix": "app-1234/", "timestamp_field": "time"}
    )
    kwargs = operator_kwargs(config, S3ToLyticsOperator, task_id="import", job_id="swrve", **arguments)
    return S3ToLyticsOperator(**kwargs)


def _ns(sandbox: Any) -> list[int]:
    return [r["n"] for r in sandbox.collected("swrve_activity")]


def test_raw_export_files_land_once_with_rejects_across_a_kill_and_retry(
    lytics_env: Any, s3_bucket: str, moto_endpoint: str, tmp_path: Path
) -> None:
    _put(moto_endpoint, s3_bucket, "app-1234/2026-11-22/events_0.log.gz", [*_events(0, 10), '{"user": "cut'])
    _put(moto_endpoint, s3_bucket, "app-1234/2026-11-23/events_1.log.gz", _events(10, 40))
    _put(moto_endpoint, s3_bucket, "app-9999/2026-11-23/events_0.log.gz", _events(900, 905))
    lytics_env.faults.add(FaultRule("5xx", path_regex="/collect/json/swrve_activity", after=3, times=None))
    with pytest.raises(ServiceError):
        run_task(_importer(s3_bucket, batch_size=8), make_context())
    lytics_env.faults.clear()
    assert 10 < len(_ns(lytics_env)) < 40

    report = run_task(_importer(s3_bucket, batch_size=8), make_context())
    assert _ns(lytics_env) == list(range(40))  # every event once across the retry
    assert report["files"] == ["app-1234/2026-11-23/events_1.log.gz"]
    assert all(r["query"]["timestamp_field"] == "time" for r in lytics_env.collect_requests)
    rejects = next((tmp_path / "data").rglob("rejects_app-1234_2026-11-22_events_0.log.gz.jsonl"))
    assert json.loads(rejects.read_text())["reason"].startswith("malformed JSON")

    _put(moto_endpoint, s3_bucket, "app-1234/2026-11-24/events_0.log.gz", _events(40, 43))
    later = run_task(_importer(s3_bucket), make_context(run_id="r2"))
    assert later["files"] == ["app-1234/2026-11-24/events_0.log.gz"] and _ns(lytics_env)[-3:] == [40, 41, 42]


def test_example_config_builds_with_the_seed_stream() -> None:
    from airflow.sdk import DAG

    from lytics_provider.jobs.context import JobContext
    from lytics_provider.jobs.loader import load_job_file

    config = load_job_file(INCLUDE / "swrve_import_activity.yaml")
    with DAG("swrve_example", schedule=None) as dag:
        config.add_tasks(JobContext(dag, "swrve_example", INCLUDE / "swrve_import_activity.yaml"))
    op = dag.task_dict["import"]
    assert (op.stream, op.file_type, op.bucket, op.prefix) == (
        "swrve_activity",
        "json",
        "swrveexternal-acme",
        "app-1234/",
    )
