"""A deferrable Dotdigital export on `airflow standalone` (which runs a triggerer), through the REST API.

The Lytics and Dotdigital stand-ins run in this process; the Dotdigital stand-in keeps each bulk
import ``NotFinished`` for :data:`IMPORT_POLLS` status polls. One run of a generated
``dotdigital_export_contacts`` DAG with ``deferrable: true`` and a one-second ``poll_interval`` is
triggered through the REST API; its ``deliver`` task must be seen ``deferred`` while the import
runs (the wait is in the triggerer, not the worker), then the run succeeds in its first try with
every member of the audience in the address book, imported once.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lytics_sandbox.dotdigital import DotdigitalSandbox, connection_json
from lytics_sandbox.lytics import LyticsSandbox
from lytics_sandbox.synth import SyntheticAccount
from tests.e2e.airflow_stack import (
    AIRFLOW,
    TERMINAL,
    AirflowStack,
    home_from,
    rest_client,
    state_of,
    task_log,
    task_states,
    xcom_value,
)
from tests.helpers import lytics_conn

pytestmark = pytest.mark.e2e
pytest.importorskip("airflow_client.client", reason="apache-airflow-client is not installed")

AUDIENCE = "newsletter"
MEMBERS = 150
IMPORT_POLLS = 5  # status polls answering NotFinished before the stand-in's import is Finished
DAG_ID = "lytics_dotdigital_deferred"
BOOK = "Lytics Deferred Newsletter"
IMPORT_ROUTE = "POST /v2/address-books/{book}/contacts/import"
IMPORT_STATUS = "GET /v2/contacts/import/{import_id}"
JOB = f"""\
type: dotdigital_export_contacts
audience: {AUDIENCE}
address_book_name: {BOOK}
create_address_book: true
map_fields:
  first_name: FIRSTNAME
deferrable: true
poll_interval: 1
start_date: "2099-01-01"  # no scheduled run: unpausing the DAG starts nothing besides the triggered run
retry_delay_minutes: 0.1  # a task the loaded executor loses is retried at once
"""


class DeferralServices:
    """The stand-ins and the `airflow standalone` stack of this module (started once per session)."""

    def __init__(self, root: Path, airflow_env: dict[str, str]) -> None:
        self.stack_exit = contextlib.ExitStack()
        self.lytics = self.stack_exit.enter_context(
            LyticsSandbox(SyntheticAccount(audiences={AUDIENCE: MEMBERS}))
        )
        self.dotdigital = self.stack_exit.enter_context(DotdigitalSandbox(import_polls=IMPORT_POLLS))
        jobs = root / "jobs"
        jobs.mkdir(parents=True)
        (jobs / "dotdigital_deferred.yaml").write_text(JOB)
        env = {
            **home_from(airflow_env, root / "home"),
            "AIRFLOW_CONN_LYTICS_DEFAULT": lytics_conn(self.lytics.base_url),
            "AIRFLOW_CONN_DOTDIGITAL_DEFAULT": connection_json(self.dotdigital),
            "LYTICS_DATA_DIR": str(root / "data"),
            # airflow standalone starts its components as `airflow ...` from PATH
            "PATH": os.pathsep.join([str(AIRFLOW.parent), os.environ.get("PATH", "")]),
        }
        self.airflow = AirflowStack(
            home=root / "home", base_env=env, jobs_dir=jobs, components=("standalone",)
        )

    def start(self) -> DeferralServices:
        self.stack_exit.callback(self.airflow.stop)
        self.airflow.start()
        self.airflow.wait_for_dags([DAG_ID])
        return self

    def stop(self) -> None:
        self.stack_exit.close()


@pytest.fixture(scope="session")
def deferral(
    airflow_home: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DeferralServices]:
    services = DeferralServices(tmp_path_factory.mktemp("deferral"), airflow_home)
    try:
        yield services.start()
    finally:
        services.stop()


def run_watching_deliver(api: Any, timeout: float = 300) -> tuple[Any, list[str], Any]:
    """Trigger one run; poll it and its ``deliver`` task until the run ends.

    :return: the finished run, the distinct ``deliver`` states seen in order, the last ``deliver``
        task instance.
    """
    from airflow_client import client
    from airflow_client.client.api.dag_api import DAGApi
    from airflow_client.client.api.dag_run_api import DagRunApi
    from airflow_client.client.api.task_instance_api import TaskInstanceApi

    DAGApi(api).patch_dag(DAG_ID, client.DAGPatchBody(is_paused=False))
    runs, instances = DagRunApi(api), TaskInstanceApi(api)
    run = runs.trigger_dag_run(DAG_ID, client.TriggerDAGRunPostBody(logical_date=None, conf={}))
    seen: list[str] = []
    deliver = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(client.ApiException):  # 404 until the scheduler created the instance
            deliver = instances.get_task_instance(DAG_ID, run.dag_run_id, "deliver")
            state = state_of(deliver) if deliver.state is not None else "none"
            if not seen or seen[-1] != state:
                seen.append(state)
        run = runs.get_dag_run(DAG_ID, run.dag_run_id)
        if state_of(run) in TERMINAL:
            deliver = instances.get_task_instance(DAG_ID, run.dag_run_id, "deliver")
            return run, seen, deliver
        time.sleep(0.5)
    raise TimeoutError(f"run {run.dag_run_id} still {state_of(run)} after {timeout:.0f}s; deliver: {seen}")


def test_deferrable_export_waits_in_the_triggerer_and_completes(deferral: DeferralServices) -> None:
    from airflow_client.client.api.dag_run_api import DagRunApi

    with rest_client(deferral.airflow) as api:
        run, seen, deliver = run_watching_deliver(api)
        states = task_states(api, run.dag_run_id, DAG_ID)
        logs = deferral.airflow.log_tail(chars=6000)
        assert state_of(run) == "success", f"{states}\n{seen}\n{logs}"
        assert states == {"scan": "success", "deliver": "success", "report": "success"}
        runs = DagRunApi(api).get_dag_runs(DAG_ID).dag_runs
        assert [r.dag_run_id for r in runs] == [run.dag_run_id]  # the triggered run, alone
        report = xcom_value(api, run.dag_run_id, "deliver", DAG_ID)
        deliver_log = task_log(api, run.dag_run_id, "deliver", DAG_ID)

    assert "deferred" in seen, f"deliver was never seen deferred: {seen}\n{deliver_log[-6000:]}"
    assert "deferring the wait to the triggerer" in deliver_log
    assert seen.index("deferred") < seen.index("success")
    assert deliver.try_number == 1  # resumed from the trigger's event, not retried

    dd = deferral.dotdigital
    book = dd.book_by_name(BOOK)
    assert book is not None
    expected = list(deferral.lytics.expected_members(AUDIENCE))
    assert set(dd.members(book.id)) == {m["email"] for m in expected}
    assert report["outcomes"]["add:Subscribed"] == len(expected) == MEMBERS
    assert dd.calls_to(IMPORT_ROUTE) == 1  # the resumed task reconnected to its import
    # the worker's first poll, then the trigger's polls until Finished
    assert dd.calls_to(IMPORT_STATUS) >= IMPORT_POLLS + 1, json.dumps(report, default=str)[:2000]
