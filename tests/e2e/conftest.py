"""End-to-end fixtures: a throwaway Airflow home with a migrated SQLite metadata DB, shared per session.

``airflow_home`` yields the environment for Airflow subprocesses (copy it before changing it):
AIRFLOW_HOME in a temp folder, the repo's ``dags/`` as the DAGs folder, no example DAGs.
``airflow_cli`` runs ``airflow <args>`` in that environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = Path(sys.executable).with_name("airflow")
_INHERITED_SETTINGS = ("AIRFLOW_HOME", "AIRFLOW_CONFIG", "LYTICS_JOBS_DIR")


def run_airflow(
    env: Mapping[str, str], *args: str, timeout: float = 300, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``airflow <args>`` with ``env``; on failure (when ``check``) fail the test with the output tail."""
    result = subprocess.run(
        [str(AIRFLOW), *args], env=dict(env), capture_output=True, text=True, timeout=timeout, cwd=REPO
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"airflow {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
        )
    return result


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment of an Airflow with its own home and a migrated SQLite DB (``airflow db migrate`` once)."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AIRFLOW__") and key not in _INHERITED_SETTINGS
    }
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        PYTHONWARNINGS="ignore",
    )
    run_airflow(env, "db", "migrate")
    yield env


@pytest.fixture
def airflow_cli(airflow_home: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``airflow_cli(*args, env_extra={...})`` runs the Airflow CLI against the session's home."""

    def call(
        *args: str, env_extra: Mapping[str, str] | None = None, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run_airflow({**airflow_home, **(env_extra or {})}, *args, timeout=timeout, check=check)

    return call
