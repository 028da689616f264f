# ruff: noqa: F811 - pytest fixtures imported from conftest_warehouse
"""OpenLineage of the file-drop exports: the audience in, the file written out."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from airflow.providers.common.compat.openlineage.facet import Dataset
from airflow.providers.openlineage.extractors import OperatorLineage

from lytics_provider.files.export_lineage import delivered_file_dataset
from lytics_provider.transfers.lytics_to_s3 import LyticsToS3Operator
from tests.helpers import run_task
from tests.integration.conftest_warehouse import (  # noqa: F401 - fixtures
    lytics_env,
    moto_endpoint,
    s3_bucket,
    scanned_context,
)


def lytics_namespace() -> str:
    import os

    conn = os.environ["AIRFLOW_CONN_LYTICS_DEFAULT"]
    host = json.loads(conn)["host"] if conn.startswith("{") else urlsplit(conn).hostname
    return f"lytics://{urlsplit(host if '://' in host else f'https://{host}').netloc}"


def test_an_s3_export_reports_the_audience_in_and_the_object_out(
    lytics_env, s3_bucket, moto_endpoint
) -> None:
    context = scanned_context("high_value")
    op = LyticsToS3Operator(
        task_id="deliver",
        job_id="job",
        bucket=s3_bucket,
        directory="exports/lytics",
        fields=["_uid", "email"],
    )
    run_task(op, context)
    lineage = op.get_openlineage_facets_on_complete(context["ti"])
    assert isinstance(lineage, OperatorLineage)
    assert lineage.inputs == [Dataset(namespace=lytics_namespace(), name="high_value")]
    assert lineage.outputs == [
        Dataset(
            namespace=f"s3://{s3_bucket}", name="exports/lytics/lytics_high_value_20261123T000000Z.csv.gz"
        )
    ]


def test_a_dry_run_writes_no_dataset(lytics_env, s3_bucket, moto_endpoint) -> None:
    context = scanned_context("high_value", dry_run=True)
    op = LyticsToS3Operator(task_id="deliver", job_id="job", bucket=s3_bucket, fields=["_uid"])
    run_task(op, context)
    lineage = op.get_openlineage_facets_on_complete(context["ti"])
    assert lineage.outputs == [] and [d.name for d in lineage.inputs] == ["high_value"]


@pytest.mark.parametrize(
    ("path", "namespace", "name"),
    [
        ("gs://drops/a/b.csv", "gs://drops", "a/b.csv"),
        ("wasb://box/a.csv.gz", "wasbs://box", "a.csv.gz"),
        ("/upload/lytics_vip.csv", "file://sftp.example.com:2222", "/upload/lytics_vip.csv"),
    ],
)
def test_each_drop_names_its_file_as_the_official_providers_do(
    path: str, namespace: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_DROP_SFTP", json.dumps({"conn_type": "sftp", "host": "sftp.example.com", "port": 2222})
    )
    assert delivered_file_dataset(path, "drop_sftp") == Dataset(namespace=namespace, name=name)
