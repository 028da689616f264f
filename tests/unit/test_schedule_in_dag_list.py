"""The DAG list's Schedule column: the schedule in words with its timezone, from the serialized DAG.

Airflow's DAG list shows ``DagModel.timetable_summary`` (the decoded timetable's ``summary``) and,
as its tooltip, ``timetable_description``; the dag processor fills both from the serialized DAG
(``airflow/dag_processing/collection.py``). These tests serialize a job's DAG as the dag processor
does and decode it as the scheduler does.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.plugins_manager import get_timetables_plugins
from airflow.serialization.serialized_objects import DagSerialization, LazyDeserializedDAG

from lytics_provider.jobs.dag_builder import build_dag
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.timetables.keep_updated import KeepUpdatedTimetable

REPO = Path(__file__).resolve().parents[2]


def serialized_job_dag(name: str):
    """The example job's DAG after a round trip through the serialized form."""
    jobs, errors = load_job_files([REPO / "include" / "jobs" / name])
    assert errors == []
    job = jobs[0]
    data = DagSerialization.to_dict(build_dag(job, register=False))
    return data, DagSerialization.from_dict(data)


def test_the_timetable_is_registered_by_the_package_plugin() -> None:
    registered = get_timetables_plugins()
    assert registered["lytics_provider.timetables.keep_updated.KeepUpdatedTimetable"] is KeepUpdatedTimetable


def test_the_serialized_dag_shows_the_schedule_in_words_with_its_timezone() -> None:
    data, dag = serialized_job_dag("s3_export_high_value.yaml")
    encoded = data["dag"]["timetable"]
    assert encoded["__type"] == "lytics_provider.timetables.keep_updated.KeepUpdatedTimetable"
    assert encoded["__var"]["words"] == "daily at 06:00 America/New_York"
    assert isinstance(dag.timetable, KeepUpdatedTimetable)
    assert dag.timetable.summary == "daily at 06:00 America/New_York"
    assert dag.timetable.description == "At 06:00, America/New_York time (cron '0 6 * * *')"
    # The dag processor reads the same attributes from the lazily decoded DAG it stores.
    lazy = LazyDeserializedDAG(data=data)
    assert lazy.timetable.summary == "daily at 06:00 America/New_York"


@pytest.mark.parametrize(
    ("fields", "summary"),
    [
        (
            {
                "frequency": "weekly",
                "day_of_week": "monday",
                "time_of_day": "07:15",
                "timezone": "Europe/Paris",
            },
            "weekly on Monday at 07:15 Europe/Paris",
        ),
        (
            {"frequency": "monthly", "day_of_month": 3, "timezone": "Asia/Tokyo"},
            "monthly on day 3 at 00:00 Asia/Tokyo",
        ),
        ({"frequency": "hourly"}, "hourly (UTC)"),
    ],
)
def test_each_frequency_keeps_its_cron_and_shows_words(fields: dict, summary: str) -> None:
    from airflow.serialization.decoders import decode_timetable
    from airflow.serialization.encoders import encode_timetable

    from lytics_provider.jobs.base import ScheduleFields
    from lytics_provider.jobs.schedule import build_timetable, cron_expression

    cfg = ScheduleFields(keep_updated=True, **fields)
    decoded = decode_timetable(encode_timetable(build_timetable(cfg)))
    assert decoded.summary == summary
    assert decoded._expression == cron_expression(cfg)
    assert decoded._timezone.name == cfg.timezone
    assert decoded == build_timetable(cfg)
