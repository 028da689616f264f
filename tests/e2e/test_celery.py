"""The Mapp job on the production shape: CeleryExecutor, PostgreSQL metadata DB, Redis broker.

A fresh database (``lytics_airflow_ci``) on the local PostgreSQL is migrated, then api-server,
scheduler, dag-processor and an ``airflow celery worker`` (listening on a queue of its own, so no
other worker can take the tasks) run the job triggered through the REST API. Skips with the
reason when PostgreSQL or Redis is not listening on loopback.
"""

from __future__ import annotations

import csv
import io
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.airflow_stack import (
    MAPP_DAG,
    REPO,
    AirflowStack,
    LyticsServices,
    rest_client,
    state_of,
    task_states,
    trigger_and_wait,
    xcom_value,
)

pytestmark = pytest.mark.e2e
pytest.importorskip("airflow_client.client", reason="apache-airflow-client is not installed")
pytest.importorskip("airflow.providers.celery", reason="the celery provider is not installed")

PG = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)
DATABASE = "lytics_airflow_ci"
AUDIENCE = 2_500


def listening(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


def fresh_database() -> str:
    """Drop and create the CI metadata database; return its SQLAlchemy URL."""
    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")
    try:
        with psycopg.connect(
            f"host={PG[0]} port={PG[1]} user=postgres dbname=postgres", autocommit=True
        ) as db:
            db.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
            db.execute(f"CREATE DATABASE {DATABASE}")
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL on {PG[0]}:{PG[1]} refused user postgres: {exc}")
    return f"postgresql+psycopg2://postgres@{PG[0]}:{PG[1]}/{DATABASE}"


@pytest.fixture(scope="module")
def celery_stack(
    airflow_home: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AirflowStack, LyticsServices, str]]:
    for name, address in (("PostgreSQL", PG), ("Redis", REDIS)):
        if not listening(address):
            pytest.skip(f"{name} is not listening on {address[0]}:{address[1]}")
    database = fresh_database()
    root = tmp_path_factory.mktemp("celery")
    services = LyticsServices(root / "services", {"high_value": AUDIENCE, "all_users": 4_000}).start()
    queue = f"lytics_ci_{secrets.token_hex(4)}"
    stack = AirflowStack(
        home=root / "home",
        base_env={**airflow_home, **services.env()},
        jobs_dir=REPO / "include" / "jobs",
        executor="CeleryExecutor",
        extra_env={
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS[0]}:{REDIS[1]}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{database.replace('+psycopg2', '')}",
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        },
    )
    stack.home.mkdir(parents=True)
    stack.cli("db", "migrate")
    try:
        stack.start()
        stack.spawn("celery worker", None, "--queues", queue, "--concurrency", "2", "--without-mingle")
        stack.wait_for_dags([MAPP_DAG])
        yield stack, services, queue
    finally:
        stack.stop()
        services.stop()


def test_celery_worker_runs_the_rest_triggered_job(
    celery_stack: tuple[AirflowStack, LyticsServices, str],
) -> None:
    from airflow_client.client.api.task_instance_api import TaskInstanceApi

    airflow, services, queue = celery_stack
    with rest_client(airflow) as api:
        run = trigger_and_wait(api, {"full_refresh": True}, timeout=400)
        states = task_states(api, run.dag_run_id)
        assert state_of(run) == "success", f"{states}\n{airflow.log_tail()}"
        assert states == {"scan": "success", "deliver": "success", "report": "success"}
        report: dict[str, Any] = xcom_value(api, run.dag_run_id, "report")
        instances = TaskInstanceApi(api).get_task_instances(MAPP_DAG, run.dag_run_id).task_instances
    # Only this test's worker listens on this queue: the tasks ran on the Celery worker.
    assert {(ti.queue, ti.executor or "CeleryExecutor") for ti in instances} == {(queue, "CeleryExecutor")}
    assert all(ti.hostname for ti in instances)

    expected = [m["email"] for m in services.lytics.expected_members("high_value")]
    assert (report["members"], report["enters"], report["exits"]) == (AUDIENCE, AUDIENCE, 0)
    assert report["delivery"]["rows"] == AUDIENCE
    landed = services.sftp_root / "upload" / Path(report["delivery"]["remote_path"]).name
    rows = list(csv.reader(io.StringIO(landed.read_text(encoding="utf-8"), newline="")))
    assert [row[0] for row in rows[1:]] == expected
