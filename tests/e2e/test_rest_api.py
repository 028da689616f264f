"""The Mapp job on a real Airflow: triggered through the REST API with params, run by the scheduler.

api-server + scheduler + dag-processor (LocalExecutor, SQLite) run as processes on loopback; the
official ``apache-airflow-client`` authenticates with a JWT from ``POST /auth/token``, unpauses the
generated DAG, triggers it with ``conf``, polls the run to success and reads the ``report`` task's
XCom. The CSV must be on the SFTP server with every member of the audience.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.airflow_stack import (
    AUDIENCES,
    AirflowStack,
    LyticsServices,
    rest_client,
    shared_stack,
    state_of,
    task_log,
    task_states,
    trigger_and_wait,
    xcom_value,
)

pytestmark = pytest.mark.e2e
pytest.importorskip("airflow_client.client", reason="apache-airflow-client is not installed")


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, airflow_home: dict[str, str], tmp_path_factory) -> Any:
    return shared_stack(request.config, airflow_home, tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="module")
def api(stack: tuple[AirflowStack, LyticsServices]) -> Any:
    with rest_client(stack[0]) as api_client:
        yield api_client


def test_rest_triggered_run_delivers_the_audience_and_reports_counts(
    stack: tuple[AirflowStack, LyticsServices], api: Any
) -> None:
    airflow, services = stack
    run = trigger_and_wait(api, {"audience": "vip", "full_refresh": True})
    states = task_states(api, run.dag_run_id)
    assert state_of(run) == "success", f"{states}\n{airflow.log_tail('scheduler')}"
    assert states == {"scan": "success", "deliver": "success", "report": "success"}

    expected = list(services.lytics.expected_members("vip"))
    report = xcom_value(api, run.dag_run_id, "report")
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

    # Progress lines (count, rate) in the task logs the UI shows, and no secret anywhere in them.
    scan_log = task_log(api, run.dag_run_id, "scan")
    deliver_log = task_log(api, run.dag_run_id, "deliver")
    assert re.search(r"members scanned: 300/300 \(100\.0%\), [\d,]+/s \(done\)", scan_log), scan_log[-2000:]
    assert re.search(r"rows written: 300/300 \(100\.0%\), [\d,]+/s \(done\)", deliver_log), deliver_log[
        -2000:
    ]
    for text in (scan_log, deliver_log, task_log(api, run.dag_run_id, "report")):
        assert "sandbox-token" not in text and "sandbox-pass" not in text


def test_dry_run_param_sends_nothing(stack: tuple[AirflowStack, LyticsServices], api: Any) -> None:
    _, services = stack
    run = trigger_and_wait(api, {"dry_run": True})
    assert state_of(run) == "success"
    report = xcom_value(api, run.dag_run_id, "report")
    delivery = report["delivery"]
    assert report["dry_run"] is True and delivery["dry_run"] is True
    assert report["members"] == AUDIENCES["high_value"] == delivery["rows"]
    assert delivery["file_name"].startswith("export-lytics-High_Value-")
    # The file was staged on the worker and never uploaded.
    assert Path(delivery["staged_file"]).name == delivery["file_name"]
    assert not (services.sftp_root / "upload" / delivery["file_name"]).exists()
    assert not list((services.sftp_root / "upload").glob(f".{delivery['file_name']}*"))
