"""The Mapp job on a real Airflow: triggered through the REST API with params, run by the scheduler.

api-server + scheduler + dag-processor (LocalExecutor, SQLite) run as processes on loopback; the
official ``apache-airflow-client`` authenticates with a JWT from ``POST /auth/token``, unpauses the
generated DAG, triggers it with ``conf``, polls the run to success and reads the ``report`` task's
XCom. The CSV must be on the SFTP server with every member of the audience.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.airflow_stack import MAPP_DAG, AirflowStack, LyticsServices, shared_stack

pytestmark = pytest.mark.e2e
client = pytest.importorskip("airflow_client.client", reason="apache-airflow-client is not installed")

AUDIENCES = {"high_value": 1_200, "vip": 300, "all_users": 2_000}
TERMINAL = {"success", "failed"}


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, airflow_home: dict[str, str], tmp_path_factory) -> Any:
    return shared_stack(request.config, airflow_home, tmp_path_factory.mktemp("stack"), AUDIENCES)


@pytest.fixture(scope="module")
def api(stack: tuple[AirflowStack, LyticsServices]) -> Any:
    airflow, _ = stack
    configuration = client.Configuration(host=airflow.url, access_token=airflow.token())
    with client.ApiClient(configuration) as api_client:
        yield api_client


def trigger_and_wait(api: Any, conf: dict[str, Any], timeout: float = 300) -> Any:
    """Unpause the Mapp DAG, trigger it with ``conf`` and poll the run until it finishes."""
    from airflow_client.client.api.dag_api import DAGApi
    from airflow_client.client.api.dag_run_api import DagRunApi

    DAGApi(api).patch_dag(MAPP_DAG, client.DAGPatchBody(is_paused=False))
    runs = DagRunApi(api)
    run = runs.trigger_dag_run(MAPP_DAG, client.TriggerDAGRunPostBody(logical_date=None, conf=conf))
    assert run.conf == conf
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = runs.get_dag_run(MAPP_DAG, run.dag_run_id)
        if str(run.state.value if hasattr(run.state, "value") else run.state) in TERMINAL:
            return run
        time.sleep(2)
    pytest.fail(f"run {run.dag_run_id} still {run.state} after {timeout:.0f}s")


def task_states(api: Any, run_id: str) -> dict[str, str]:
    from airflow_client.client.api.task_instance_api import TaskInstanceApi

    instances = TaskInstanceApi(api).get_task_instances(MAPP_DAG, run_id).task_instances
    return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in instances}


def xcom(api: Any, run_id: str, task_id: str) -> Any:
    from airflow_client.client.api.x_com_api import XComApi

    entry = XComApi(api).get_xcom_entry(MAPP_DAG, task_id, run_id, "return_value", deserialize=True)
    return entry.actual_instance.value


def test_rest_triggered_run_delivers_the_audience_and_reports_counts(
    stack: tuple[AirflowStack, LyticsServices], api: Any
) -> None:
    airflow, services = stack
    run = trigger_and_wait(api, {"audience": "vip", "full_refresh": True})
    states = task_states(api, run.dag_run_id)
    assert str(getattr(run.state, "value", run.state)) == "success", (
        f"{states}\n{airflow.log_tail('scheduler')}"
    )
    assert states == {"scan": "success", "deliver": "success", "report": "success"}

    expected = list(services.lytics.expected_members("vip"))
    report = xcom(api, run.dag_run_id, "report")
    assert report["members"] == len(expected) == AUDIENCES["vip"]
    assert (report["enters"], report["exits"], report["changes"]) == (len(expected), 0, 0)
    assert report["audience"]["slug"] == "vip"
    assert report["scan_api_calls"] >= -(-len(expected) // 100)
    delivery = report["delivery"]
    assert (delivery["rows"], delivery["rejected"], delivery["dry_run"]) == (len(expected), 0, False)

    landed = services.sftp_root / "upload" / Path(delivery["remote_path"]).name
    assert landed.name.startswith("export-lytics-Vip-") and landed.suffix == ".csv"
    rows = list(csv.reader(io.StringIO(landed.read_text(encoding="utf-8"), newline="")))
    assert rows[0][0] == "user.Email"
    assert [row[0] for row in rows[1:]] == [member["email"] for member in expected]
    assert delivery["bytes"] == landed.stat().st_size


def test_dry_run_param_sends_nothing(stack: tuple[AirflowStack, LyticsServices], api: Any) -> None:
    _, services = stack
    before = sorted(p.name for p in (services.sftp_root / "upload").iterdir())
    run = trigger_and_wait(api, {"dry_run": True})
    assert str(getattr(run.state, "value", run.state)) == "success"
    report = xcom(api, run.dag_run_id, "report")
    assert report["dry_run"] is True and report["delivery"]["dry_run"] is True
    assert report["members"] == AUDIENCES["high_value"] == report["delivery"]["rows"]
    assert sorted(p.name for p in (services.sftp_root / "upload").iterdir()) == before
