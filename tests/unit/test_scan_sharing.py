"""The DAG generator gives every scan task the union of the fields of the jobs sharing its audience."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from lytics_provider.jobs import loader
from lytics_provider.jobs.dag_builder import build_dags

JOBS = {
    "s3_high.yaml": """
        type: s3_export
        audience: high_value
        bucket: exports
        fields: [email, first_name]
    """,
    "mapp_high.yaml": """
        type: mapp_sftp_export
        audience: high_value
        sftp_conn_id: mapp_sftp
        field_mapping: {email: user.Email, last_name: user.LastName}
    """,
    "dotdigital_multi.yaml": """
        type: dotdigital_export_multiple_audiences
        audiences:
          - {audience: high_value, address_book: High}
          - {audience: other, address_book: Other}
        map_audiences: {country: COUNTRY}
    """,
    "s3_high_limited.yaml": """
        type: s3_export
        audience: high_value
        bucket: exports
        fields: [city]
        user_limit: 10
    """,
    "s3_high_alone.yaml": """
        type: s3_export
        audience: high_value
        bucket: exports
        fields: [scores]
        scan_max_age_minutes: 0
    """,
    "s3_high_other_conn.yaml": """
        type: s3_export
        audience: high_value
        bucket: exports
        fields: [user_id]
        lytics_conn_id: lytics_other
    """,
    "s3_news.yaml": """
        type: s3_export
        audience: newsletter
        bucket: exports
        fields: [email]
    """,
    "redshift_news_all.yaml": """
        type: redshift_export
        audience: newsletter
        redshift_conn_id: redshift
        s3_bucket: staging
        table: newsletter
    """,
}
HIGH = [("lytics_s3_high", "scan"), ("lytics_mapp_high", "scan"), ("lytics_dotdigital_multi", "scan_1")]


@pytest.fixture
def jobs_dir(tmp_path: Path) -> Path:
    loader.clear_cache()
    directory = tmp_path / "jobs"
    directory.mkdir()
    for name, text in JOBS.items():
        (directory / name).write_text(textwrap.dedent(text))
    return directory


def _scan_tasks(dags: dict) -> dict[tuple[str, str], object]:
    from lytics_provider.operators.lytics import LyticsAudienceScanOperator

    return {
        (dag_id, task.task_id): task
        for dag_id, dag in dags.items()
        for task in dag.tasks
        if isinstance(task, LyticsAudienceScanOperator)
    }


def test_the_loader_gives_each_scan_the_union_of_its_audiences_fields(jobs_dir: Path) -> None:
    tasks = _scan_tasks(build_dags(jobs_dir))
    assert len(tasks) == 9
    union = sorted({name for key in HIGH for name in tasks[key].fields})
    assert {"email", "first_name", "last_name", "country"} <= set(union)
    assert not {"city", "scores", "user_id"} & set(union)
    for key in HIGH:
        assert tasks[key].scan_fields == union, key
        assert tasks[key].scan_max_age_minutes == 30
    # the other audience of the multi-audience job has no partner: its own fields
    other = tasks[("lytics_dotdigital_multi", "scan_2")]
    assert other.scan_fields == sorted(other.fields)
    # a user_limit job, a job that scans alone and a job on another connection are not in the union
    assert tasks[("lytics_s3_high_limited", "scan")].scan_fields is None
    alone = tasks[("lytics_s3_high_alone", "scan")]
    assert alone.scan_max_age_minutes == 0 and alone.scan_fields is None
    assert tasks[("lytics_s3_high_other_conn", "scan")].scan_fields == ["user_id"]
    # one job wanting every field makes the shared scan fetch every field
    assert tasks[("lytics_s3_news", "scan")].scan_fields == "all"
    assert tasks[("lytics_redshift_news_all", "scan")].scan_fields == "all"


def test_a_worker_building_one_dag_computes_the_same_union(jobs_dir: Path) -> None:
    everything = _scan_tasks(build_dags(jobs_dir))
    dags = build_dags(jobs_dir, only_dag_id="lytics_mapp_high")
    assert list(dags) == ["lytics_mapp_high"]
    assert _scan_tasks(dags)[("lytics_mapp_high", "scan")].scan_fields == everything[HIGH[1]].scan_fields
    news = build_dags(jobs_dir, only_dag_id="lytics_s3_news")
    assert _scan_tasks(news)[("lytics_s3_news", "scan")].scan_fields == "all"
