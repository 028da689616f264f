"""What the Airflow UI shows of a job, on a real Airflow (api-server + scheduler + dag-processor, SQLite).

The DAG list's schedule in words, the run report as the DAG run's note (set by the ``report`` task
through the REST API connection ``airflow_api``, here the stack itself), the asset event the
``deliver`` task records for its destination, and a downstream DAG scheduled on that Asset
(``tests/e2e/dag_files/after_mapp_delivery.py``) running after the delivery.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.airflow_stack import (
    DOWNSTREAM_DAG,
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


def downstream_run_of(stack: AirflowStack, source_run_id: str, timeout: float = 180) -> dict[str, Any]:
    """The successful run of the downstream DAG whose triggering events include ``source_run_id``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = stack.api("GET", f"/dags/{DOWNSTREAM_DAG}/dagRuns").json()["dag_runs"]
        for run in runs:
            if run["state"] != "success":
                continue
            path = f"/dags/{DOWNSTREAM_DAG}/dagRuns/{run['dag_run_id']}/taskInstances/read_the_delivery"
            value = stack.api("GET", f"{path}/xcomEntries/return_value").json().get("value")
            if source_run_id in str(value):
                return run
        time.sleep(2)
    raise TimeoutError(f"no run of {DOWNSTREAM_DAG} for {source_run_id} after {timeout:.0f}s")


def test_a_run_gets_its_report_as_note_and_records_the_delivery_asset_event(stack: AirflowStack) -> None:
    unpaused = stack.api("PATCH", f"/dags/{DOWNSTREAM_DAG}", json={"is_paused": False})
    assert unpaused.status_code == 200, unpaused.text
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
    # A user's DAG scheduled on that Asset runs after the delivery, started by its event.
    downstream = downstream_run_of(stack, run.dag_run_id)
    assert downstream["run_type"] == "asset_triggered"
