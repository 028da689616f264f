"""docker-compose.yaml has the production shape (no container engine runs here, so parse it)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_services_of_the_production_shape() -> None:
    services = _compose()["services"]
    for name in (
        "postgres",
        "redis",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "lytics-sandbox",
    ):
        assert name in services, name
    commands = {name: " ".join(svc.get("command") or []) for name, svc in services.items()}
    assert commands["airflow-apiserver"] == "airflow api-server"
    assert commands["airflow-scheduler"] == "airflow scheduler"
    assert commands["airflow-dag-processor"] == "airflow dag-processor"
    assert commands["airflow-triggerer"] == "airflow triggerer"
    assert commands["airflow-worker"] == "airflow celery worker"
    assert services["airflow-worker"]["deploy"]["replicas"] >= 2


def test_airflow_services_share_executor_db_broker_and_mounts() -> None:
    services = _compose()["services"]
    for name, svc in services.items():
        if not name.startswith("airflow-"):
            continue
        env = svc["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        mounts = {v.split(":")[1] for v in svc["volumes"]}
        assert {"/opt/airflow/dags", "/opt/airflow/include", "/opt/airflow/lytics_data"} <= mounts
        assert env["LYTICS_DATA_DIR"] == "/opt/airflow/lytics_data"
        if name != "airflow-init":
            assert svc["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    for local in ("dags", "include"):
        assert (ROOT / local).is_dir()


def test_image_installs_this_provider() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("# ") and "FROM apache/airflow:3.3" in dockerfile
    assert 'pip install --no-cache-dir "/opt/lytics-provider[' in dockerfile
    assert _compose()["services"]["airflow-scheduler"]["build"] == "."


def test_airflow_services_keep_committed_state_in_the_state_url() -> None:
    compose = _compose()
    for name, svc in compose["services"].items():
        if not name.startswith("airflow-"):
            continue
        url = svc["environment"]["LYTICS_STATE_URL"]
        assert url == "${LYTICS_STATE_URL:-file:///opt/airflow/lytics_state}"
        default = url.split(":-", 1)[1].rstrip("}")
        local = default.removeprefix("file://")
        volumes = dict(v.split(":")[:2][::-1] for v in svc["volumes"])
        assert volumes[local] in compose["volumes"]  # a named volume, not the data dir
        assert volumes[local] != volumes["/opt/airflow/lytics_data"]
