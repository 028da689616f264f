"""The processes the benchmarks run beside the measured ones, and the environment of their children.

``sandbox_process`` runs ``python -m lytics_sandbox`` (the Lytics API and SFTP stand-ins) and
``moto_server`` a moto S3 server, each on free loopback ports and each stopped when the ``with``
block ends; ``child_environment`` is what a measured child process gets to reach them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SANDBOX_TOKEN = "sandbox-token"


def stop(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    """End ``proc``: terminate it, and kill it when it is still running after ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def sandbox_process(*args: str) -> Iterator[dict[str, Any]]:
    """Run ``python -m lytics_sandbox *args``; yield what it prints once it listens (URLs, ports,
    users), and stop it on exit."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "lytics_sandbox", *args], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line:
            raise RuntimeError("the sandbox did not start")
        yield json.loads(line)
    finally:
        stop(proc)


def lytics_connection(info: dict[str, Any]) -> str:
    """The Airflow connection (JSON) of the sandbox's Lytics API, from what it printed on start."""
    return json.dumps({"conn_type": "lytics", "host": info["lytics_url"], "password": SANDBOX_TOKEN})


def child_environment(**connections: str) -> dict[str, str]:
    """This process's environment for a bench child: ``AIRFLOW_CONN_<NAME>`` for each of
    ``connections``, the checkout on ``PYTHONPATH`` and warnings off."""
    return {
        **os.environ,
        **{f"AIRFLOW_CONN_{name.upper()}": value for name, value in connections.items()},
        "PYTHONPATH": str(REPO),
        "PYTHONWARNINGS": "ignore",
    }


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def moto_server(start_timeout: float = 30) -> Iterator[str]:
    """``python -m moto.server`` on a free loopback port; yield its endpoint URL, stop it on exit."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + start_timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("moto server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)
