"""Audience exports declare Airflow assets: the audience in, the destination out.

A DAG scheduled on the destination asset is run by the scheduler when an asset event for it is
queued; the scheduler decides with ``AssetEvaluator.run(dag.timetable.asset_condition, statuses)``
over the serialized DAGs (``DagModel.dags_needing_dagruns``). These tests feed it the event the
job's ``deliver`` task records on success (``task_runner._build_asset_profiles(task.outlets)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import Asset

from lytics_provider.jobs.assets import destination_uri
from lytics_provider.jobs.dag_builder import build_dag
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.jobs.schema import job_types

REPO = Path(__file__).resolve().parents[2]


def example_dag(name: str) -> Any:
    jobs, errors = load_job_files([REPO / "include" / "jobs" / name])
    assert errors == []
    return build_dag(jobs[0], register=False)


def test_the_deliver_task_reads_the_audience_and_writes_the_destination() -> None:
    deliver = example_dag("s3_export_high_value.yaml").get_task("deliver")
    assert deliver.inlets == [Asset("lytics://high_value")]
    assert deliver.outlets == [Asset("s3://lytics-exports/audiences")]


@pytest.mark.parametrize(
    ("config", "uri"),
    [
        (
            {"type": "gcs_export", "audience": "vip", "bucket": "drops", "directory": "/a/b/"},
            "gcs://drops/a/b",
        ),
        (
            {
                "type": "bigquery_export",
                "audience": "vip",
                "project": "p1",
                "dataset": "d",
                "gcs_bucket": "s",
            },
            "bigquery://p1/d/users_vip",
        ),
        (
            {"type": "bigquery_export", "audience": "vip", "dataset": "d", "table": "t", "gcs_bucket": "s"},
            "lytics-destination://bigquery_export/google_cloud_default/d/t",
        ),
        (
            {"type": "file_service_export", "audience": "vip", "sftp_conn_id": "drop", "folder": "/out"},
            "lytics-destination://file_service_export/drop/out",
        ),
        (
            {"type": "ga4_audience_export", "audience": "vip", "measurement_id": "G-1", "client_id": "_uid"},
            "lytics-destination://ga4_audience_export/ga4_default/G-1",
        ),
    ],
)
def test_each_destination_has_an_asset_uri(config: dict[str, Any], uri: str) -> None:
    parsed = job_types()[config["type"]](**config)
    assert destination_uri(parsed) == uri
    Asset(uri)  # a URI Airflow accepts


def test_a_dag_scheduled_on_the_destination_is_triggered_by_a_delivery() -> None:
    from airflow.assets.evaluation import AssetEvaluator
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG
    from airflow.sdk.execution_time.task_runner import _build_asset_profiles
    from airflow.serialization.definitions.assets import SerializedAssetUniqueKey
    from airflow.serialization.serialized_objects import DagSerialization

    job = DagSerialization.from_dict(DagSerialization.to_dict(example_dag("s3_export_high_value.yaml")))
    with DAG("after_s3_delivery", schedule=[Asset("s3://lytics-exports/audiences")]) as downstream:
        EmptyOperator(task_id="load")
    waiting = DagSerialization.from_dict(DagSerialization.to_dict(downstream))
    condition = waiting.timetable.asset_condition

    # What the deliver task reports on success, as the API server turns it into an asset event.
    [profile] = _build_asset_profiles(example_dag("s3_export_high_value.yaml").get_task("deliver").outlets)
    delivered = SerializedAssetUniqueKey(name=profile.name, uri=profile.uri)
    assert [SerializedAssetUniqueKey.from_asset(a) for a in job.get_task("deliver").outlets] == [delivered]

    evaluator = AssetEvaluator(session=None)  # plain assets need no database lookup
    assert evaluator.run(condition, {delivered: True}) is True
    assert evaluator.run(condition, {delivered: False}) is False
    audience = SerializedAssetUniqueKey(name="lytics://high_value", uri="lytics://high_value/")
    assert evaluator.run(condition, {audience: True}) is False  # reading the audience triggers nothing


def test_the_scheduler_sees_the_job_feeding_the_destination() -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    data = DagSerialization.to_dict(example_dag("s3_export_high_value.yaml"))
    dependencies = data["dag"]["dag_dependencies"]
    assert {
        (d["source"], d["target"], d["label"]) for d in dependencies if d["dependency_type"] == "asset"
    } >= {("lytics_s3_export_high_value", "asset", "s3://lytics-exports/audiences")}


def test_jobs_without_a_deliver_task_declare_nothing() -> None:
    dag = example_dag("s3_import_new_users.yaml")
    assert all(not task.inlets and not task.outlets for task in dag.tasks)
