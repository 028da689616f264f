"""Every example job's DAG serializes as Airflow's DAG processor stores it: one DAG that cannot
(an operator field shadowing a BaseOperator attribute such as ``queue``, a timetable Airflow cannot
decode) would make the processor drop the whole DAG file."""

from __future__ import annotations

from pathlib import Path

from airflow.serialization.serialized_objects import DagSerialization

from lytics_provider.jobs.dag_builder import build_dags

JOBS = Path(__file__).resolve().parents[2] / "include" / "jobs"


def test_every_example_dag_serializes() -> None:
    dags = build_dags(JOBS)
    assert len(dags) == len(list(JOBS.glob("*.yaml")))
    failed = {}
    for dag_id, dag in dags.items():
        try:
            DagSerialization.to_dict(dag)
        except Exception as exc:  # every failure is reported
            failed[dag_id] = str(exc)[:300]
    assert not failed, failed
