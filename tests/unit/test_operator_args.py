"""Config fields reach operators by their own names (``operator_kwargs``), for every example job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from lytics_provider.jobs.base import StrictModel
from lytics_provider.jobs.dag_builder import build_dag
from lytics_provider.jobs.loader import find_job_files, load_job_files
from lytics_provider.jobs.operator_args import operator_arguments, operator_kwargs

REPO = Path(__file__).resolve().parents[2]


class _Base(BaseOperator):
    def __init__(self, *, job_id: str, lytics_conn_id: str = "lytics_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.lytics_conn_id = lytics_conn_id


class _Deliver(_Base):
    def __init__(self, *, bucket: str, mapping: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bucket = bucket
        self.mapping = mapping


_Base.__module__ = _Deliver.__module__ = "lytics_provider.tests_stand_in"


class _Config(StrictModel):
    bucket: str
    mapping: dict[str, str]
    lytics_conn_id: str = "lytics_default"
    retries: int = 3
    audience: str = "a"


def test_operator_arguments_are_the_provider_classes_own() -> None:
    assert operator_arguments(_Deliver) == {"bucket", "mapping", "job_id", "lytics_conn_id"}


def test_operator_kwargs_take_fields_by_name_and_arguments_win() -> None:
    config = _Config(bucket="b", mapping={"email": "EMAIL"}, lytics_conn_id="lytics_eu")
    kwargs = operator_kwargs(config, _Deliver, task_id="deliver", job_id="j", bucket="other")
    assert kwargs == {
        "mapping": {"email": "EMAIL"},
        "lytics_conn_id": "lytics_eu",
        "task_id": "deliver",
        "job_id": "j",
        "bucket": "other",
    }
    assert type(kwargs["mapping"]) is dict
    # BaseOperator's own arguments (retries) and fields the operator does not take stay out
    assert "retries" not in kwargs and "audience" not in kwargs


def test_every_example_job_hands_its_options_to_its_tasks_under_the_same_names() -> None:
    jobs, errors = load_job_files(find_job_files(REPO / "include" / "jobs"))
    assert errors == []
    checked = 0
    for job in jobs:
        dag = build_dag(job)
        config = job.config
        for task in dag.tasks:
            if not type(task).__module__.startswith("lytics_provider.transfers") and not type(
                task
            ).__module__.startswith("lytics_provider.operators.dotdigital"):
                continue
            for name in set(type(config).model_fields) & operator_arguments(type(task)):
                value = getattr(config, name)
                if value is None or name == "aid":
                    continue  # the operator's own default, or computed from other fields
                if name == "map_fields" and config.type.endswith("multiple_audiences"):
                    continue  # Export Multiple Audiences passes map_audiences
                expected = dict(value) if isinstance(value, dict) else value
                holder = task if hasattr(task, name) else task.options  # Dotdigital keeps its options apart
                assert getattr(holder, name) == expected, f"{job.path.name}: {task.task_id}.{name}"
                checked += 1
    assert checked > 100
