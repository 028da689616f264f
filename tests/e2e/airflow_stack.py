"""A real Airflow on loopback for end-to-end tests: api-server + scheduler + dag-processor (+ workers).

:class:`AirflowStack` starts the components as separate processes on a throwaway AIRFLOW_HOME
(free ports, a known admin password for the simple auth manager, the repo's ``dags/`` and a given
jobs directory), waits until the API answers and the DAGs are parsed, and stops every process it
started. :class:`LyticsServices` runs the Lytics sandbox and an SFTP server on loopback and gives
the ``AIRFLOW_CONN_*`` variables that point the jobs at them. :func:`shared_stack` keeps one
LocalExecutor stack per pytest session, so the REST, UI-story and browser tests share it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = Path(sys.executable).with_name("airflow")
ADMIN = "admin"
MAPP_DAG = "lytics_mapp_high_value_daily"
AUDIENCES = {"high_value": 1_200, "vip": 300, "all_users": 2_000}


def free_port() -> int:
    """A TCP port nobody listens on right now (bind to port 0, read it back, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], Any], what: str, timeout: float, interval: float = 1.0) -> Any:
    """Call ``check`` until it returns something truthy; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (requests.RequestException, OSError, ValueError, KeyError) as exc:
            last_error, result = exc, None
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_error!r})")


@dataclass
class LyticsServices:
    """The Lytics sandbox and an SFTP server on loopback, and where the jobs keep their files."""

    root: Path
    audiences: Mapping[str, int]
    lytics: Any = None
    sftp: Any = None

    @property
    def sftp_root(self) -> Path:
        return self.root / "sftp"

    @property
    def data_dir(self) -> Path:
        return self.root / "lytics_data"

    def start(self) -> LyticsServices:
        from lytics_sandbox.lytics import LyticsSandbox
        from lytics_sandbox.sftp import SFTPSandbox
        from lytics_sandbox.synth import SyntheticAccount

        (self.sftp_root / "upload").mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.lytics = LyticsSandbox(SyntheticAccount(audiences=dict(self.audiences)))
        self.lytics.start()
        self.sftp = SFTPSandbox(self.sftp_root, host_key_path=self.root / "sftp_host_key")
        self.sftp.start()
        return self

    def stop(self) -> None:
        for server in (self.sftp, self.lytics):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()

    def env(self) -> dict[str, str]:
        """Connections and data directory for the Airflow processes."""
        sftp_conn = {
            "conn_type": "sftp",
            "host": self.sftp.host,
            "port": self.sftp.port,
            "login": self.sftp.username,
            "password": self.sftp.password,
            "extra": {"no_host_key_check": True},
        }
        lytics_conn = {
            "conn_type": "lytics",
            "host": self.lytics.base_url,
            "password": "sandbox-token",
            "extra": {"bulk_url": self.lytics.base_url},
        }
        return {
            "AIRFLOW_CONN_LYTICS_DEFAULT": json.dumps(lytics_conn),
            "AIRFLOW_CONN_MAPP_SFTP": json.dumps(sftp_conn),
            "AIRFLOW_CONN_LYTICS_SFTP": json.dumps(sftp_conn),
            "LYTICS_DATA_DIR": str(self.data_dir),
        }


@dataclass
class AirflowStack:
    """Airflow components as processes on one home; use :meth:`start` and :meth:`stop`."""

    home: Path
    base_env: Mapping[str, str]
    jobs_dir: Path
    dags_folder: Path = REPO / "dags"
    executor: str = "LocalExecutor"
    extra_env: Mapping[str, str] = field(default_factory=dict)
    components: Sequence[str] = ("api-server", "scheduler", "dag-processor")
    port: int = 0
    password: str = ""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _token: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.home / "stack-logs"

    def env(self) -> dict[str, str]:
        """The environment every component (and the tasks they run) share."""
        passwords = self.home / "simple_auth_manager_passwords.json"
        env = {
            **self.base_env,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": self._secret("api_secret_key"),
            "AIRFLOW__API_AUTH__JWT_SECRET": self._secret("jwt_secret"),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
            "LYTICS_JOBS_DIR": str(self.jobs_dir),
            "PYTHONWARNINGS": "ignore",
            **self.extra_env,
        }
        return env

    def _secret(self, name: str) -> str:
        path = self.home / f".{name}"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
        return path.read_text()

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``airflow <args>`` in the stack's environment (raises on a non-zero exit)."""
        result = subprocess.run(
            [str(AIRFLOW), *args], env=self.env(), cwd=REPO, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        return result

    def start(self, timeout: float = 240) -> AirflowStack:
        """Start the components and wait until the API answers with a token."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        self.port = self.port or free_port()
        self.password = self.password or secrets.token_urlsafe(12)
        (self.home / "simple_auth_manager_passwords.json").write_text(json.dumps({ADMIN: self.password}))
        env = self.env()
        for component in self.components:
            self.spawn(component, env)
        wait_until(self._healthy, f"the Airflow API on {self.url}", timeout)
        return self

    def spawn(self, component: str, env: Mapping[str, str] | None = None, *args: str) -> None:
        """Start one ``airflow <component>`` process in its own process group, logging to a file."""
        log = open(self.log_dir / f"{component.replace(' ', '-')}.log", "ab")  # noqa: SIM115
        self.processes[component] = subprocess.Popen(
            [str(AIRFLOW), *component.split(), *args],
            env=dict(env or self.env()),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def _healthy(self) -> bool:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(f"airflow {name} exited ({proc.returncode}):\n{self.log_tail(name)}")
        response = requests.get(f"{self.url}/api/v2/monitor/health", timeout=5)
        return response.status_code == 200 and bool(self.token())

    def token(self) -> str:
        """A JWT for the admin user from ``POST /auth/token`` (cached)."""
        if not self._token:
            response = requests.post(
                f"{self.url}/auth/token", json={"username": ADMIN, "password": self.password}, timeout=10
            )
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A REST call to ``/api/v2{path}`` with the admin token."""
        headers = {"Authorization": f"Bearer {self.token()}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.url}/api/v2{path}", headers=headers, timeout=30, **kwargs)

    def wait_for_dags(self, dag_ids: Sequence[str], timeout: float = 240) -> None:
        """Wait until the dag-processor has stored every DAG in ``dag_ids``."""
        for dag_id in dag_ids:
            wait_until(
                lambda d=dag_id: self.api("GET", f"/dags/{d}").status_code == 200, f"DAG {dag_id}", timeout
            )

    def log_tail(self, component: str | None = None, chars: int = 4000) -> str:
        """The end of one component's log (or of every log)."""
        names = [component] if component else list(self.processes)
        parts = []
        for name in names:
            path = self.log_dir / f"{name.replace(' ', '-')}.log"
            if path.exists():
                parts.append(f"--- {name} ---\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """SIGTERM every component's process group, then SIGKILL what is left after 20 s."""
        for proc in self.processes.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.processes.clear()


def home_from(airflow_env: Mapping[str, str], target: Path) -> dict[str, str]:
    """A new Airflow home at ``target`` starting from a copy of an already migrated SQLite DB."""
    target.mkdir(parents=True, exist_ok=True)
    source = Path(airflow_env["AIRFLOW_HOME"]) / "airflow.db"
    shutil.copyfile(source, target / "airflow.db")
    return {
        **airflow_env,
        "AIRFLOW_HOME": str(target),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{target / 'airflow.db'}",
    }


# -- REST helpers (the official apache-airflow-client) -------------------------------------------
TERMINAL = {"success", "failed"}


def rest_client(stack: AirflowStack) -> Any:
    """An ``airflow_client.client.ApiClient`` authenticated with the stack's admin JWT."""
    from airflow_client import client

    return client.ApiClient(client.Configuration(host=stack.url, access_token=stack.token()))


def state_of(obj: Any) -> str:
    """The plain state string of a DAG run or task instance model."""
    return str(getattr(obj.state, "value", obj.state))


def trigger_and_wait(api: Any, conf: dict[str, Any], dag_id: str = MAPP_DAG, timeout: float = 300) -> Any:
    """Unpause ``dag_id``, trigger it with ``conf`` (no logical date) and poll the run until it ends."""
    from airflow_client import client
    from airflow_client.client.api.dag_api import DAGApi
    from airflow_client.client.api.dag_run_api import DagRunApi

    DAGApi(api).patch_dag(dag_id, client.DAGPatchBody(is_paused=False))
    runs = DagRunApi(api)
    run = runs.trigger_dag_run(dag_id, client.TriggerDAGRunPostBody(logical_date=None, conf=conf))
    if run.conf != conf:
        raise AssertionError(f"the run's conf {run.conf} is not what was sent ({conf})")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = runs.get_dag_run(dag_id, run.dag_run_id)
        if state_of(run) in TERMINAL:
            return run
        time.sleep(2)
    raise TimeoutError(f"run {run.dag_run_id} still {state_of(run)} after {timeout:.0f}s")


def task_states(api: Any, run_id: str, dag_id: str = MAPP_DAG) -> dict[str, str]:
    """``{task_id: state}`` of one run."""
    from airflow_client.client.api.task_instance_api import TaskInstanceApi

    instances = TaskInstanceApi(api).get_task_instances(dag_id, run_id).task_instances
    return {ti.task_id: state_of(ti) for ti in instances}


def xcom_value(api: Any, run_id: str, task_id: str, dag_id: str = MAPP_DAG) -> Any:
    """A task's return value, deserialized, through ``GET .../xcomEntries/return_value``."""
    from airflow_client.client.api.x_com_api import XComApi

    entry = XComApi(api).get_xcom_entry(dag_id, task_id, run_id, "return_value", deserialize=True)
    return entry.actual_instance.value


def task_log(api: Any, run_id: str, task_id: str, dag_id: str = MAPP_DAG, try_number: int = 1) -> str:
    """The whole log of one task try as served by the REST API, flattened to text."""
    from airflow_client.client.api.task_instance_api import TaskInstanceApi

    response = TaskInstanceApi(api).get_log(dag_id, run_id, task_id, try_number, full_content=True)
    return json.dumps(response.to_dict(), default=str)


_SHARED: dict[str, tuple[AirflowStack, LyticsServices]] = {}
DOWNSTREAM_DAG = "after_mapp_delivery"


def dags_with_downstream(folder: Path) -> Path:
    """A DAGs folder holding the repo's DAG file and a user's DAG scheduled on the Mapp delivery."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lytics_jobs.py").symlink_to(REPO / "dags" / "lytics_jobs.py")
    shutil.copy(Path(__file__).with_name("dag_files") / f"{DOWNSTREAM_DAG}.py", folder)
    return folder


def shared_stack(
    config: Any, airflow_env: Mapping[str, str], root: Path, audiences: Mapping[str, int] = AUDIENCES
) -> tuple[AirflowStack, LyticsServices]:
    """One LocalExecutor stack on SQLite (with its sandboxes) per pytest session, stopped at exit."""
    if "local" in _SHARED:
        return _SHARED["local"]
    services = LyticsServices(root / "services", audiences).start()
    env = home_from(airflow_env, root / "home")
    port, password = free_port(), secrets.token_urlsafe(12)
    # The report task writes each run's note through this connection: the stack's own REST API.
    api_conn = {"conn_type": "http", "host": f"http://127.0.0.1:{port}", "login": ADMIN, "password": password}
    stack = AirflowStack(
        home=root / "home",
        base_env={**env, **services.env(), "AIRFLOW_CONN_AIRFLOW_API": json.dumps(api_conn)},
        jobs_dir=REPO / "include" / "jobs",
        dags_folder=dags_with_downstream(root / "dags"),
        port=port,
        password=password,
    )

    def cleanup() -> None:
        _SHARED.pop("local", None)
        stack.stop()
        services.stop()

    config.add_cleanup(cleanup)
    try:
        stack.start()
        stack.wait_for_dags([MAPP_DAG])
    except Exception:
        cleanup()
        raise
    _SHARED["local"] = (stack, services)
    return stack, services
