"""What the Airflow UI shows of a job, on a real Airflow (api-server + scheduler + dag-processor, SQLite).

The DAG list's schedule in words, the run report as the DAG run's note (set by the ``report`` task
through the REST API connection ``airflow_api``, here the stack itself) and the asset event the
``deliver`` task records for its destination.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.airflow_stack import (
    MAPP_DAG,
    AirflowStack,
    rest_client,
    shared_stack,
    state_of,
    trigger_and_wait,
)

pytestmark = pytest.mark.e2e
pytest.importorskip("airflow_client.client", reason="apache-airflow-client is not installed")


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest, airflow_home: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AirflowStack:
    airflow, _ = shared_stack(request.config, airflow_home, tmp_path_factory.mktemp("stack"))
    return airflow


def test_the_dag_list_shows_the_schedule_in_words(stack: AirflowStack) -> None:
    dag = stack.api("GET", f"/dags/{MAPP_DAG}").json()
    assert dag["timetable_summary"] == "daily at 06:00 Europe/Berlin"
    assert dag["timetable_description"] == "At 06:00, Europe/Berlin time (cron '0 6 * * *')"


def test_a_run_gets_its_report_as_note_and_records_the_delivery_asset_event(stack: AirflowStack) -> None:
    with rest_client(stack) as api:
        run: Any = trigger_and_wait(api, {"audience": "vip", "full_refresh": True})
    assert state_of(run) == "success", stack.log_tail("scheduler")
    note = stack.api("GET", f"/dags/{MAPP_DAG}/dagRuns/{run.dag_run_id}").json()["note"]
    assert note is not None, stack.log_tail()
    assert note.startswith(
        "300 members: 300 enters, 0 exits, 0 changes; delivered 300; rejected 0; API calls "
    )
    # Unpausing the DAG also starts its latest scheduled run, which records its own event.
    events = stack.api("GET", "/assets/events", params={"source_dag_id": MAPP_DAG}).json()["asset_events"]
    this_run = [e for e in events if e["source_run_id"] == run.dag_run_id]
    assert [(e["uri"], e["source_task_id"]) for e in this_run] == [
        ("lytics-destination://mapp_sftp_export/mapp_sftp/upload", "deliver")
    ]
