"""Azurite (the Azure Storage emulator) on loopback, started once per test session.

``npx --yes azurite@3`` runs in its own process group and the whole group is killed (SIGKILL:
Azurite ignores SIGTERM, and its data lives in memory) when the session ends. Tests using
:func:`azurite` are skipped, with the reason, when Node's ``npx`` is missing or Azurite cannot
be installed from the npm registry.

Modules that import :func:`azurite` each register it as their own session fixture; the first to
run starts the emulator and the others reuse it, so a session runs one Azurite. Its queue and
table services take free ports, so it never collides with another Azurite on the machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from lytics_sandbox.azurite import connection_string, start_azurite

START_SECONDS = 180
_RUNNING: list[Azurite] = []


@dataclass(frozen=True)
class Azurite:
    """Where the emulator's blob service listens."""

    port: int

    @property
    def connection_string(self) -> str:
        return connection_string(self.port)

    @property
    def conn_json(self) -> str:
        """An Airflow ``wasb`` connection (for an ``AIRFLOW_CONN_*`` variable)."""
        import json

        return json.dumps({"conn_type": "wasb", "extra": {"connection_string": self.connection_string}})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """A running Azurite blob service (in-memory) for the whole session."""
    if _RUNNING:
        yield _RUNNING[0]
        return
    npx = shutil.which("npx")
    if npx is None:
        pytest.skip("Azurite needs Node's npx, which is not installed")
    port = _free_port()
    log = tmp_path_factory.mktemp("azurite") / "azurite.log"
    proc = start_azurite(npx, port, log)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not _listening(port):
            if proc.poll() is not None:
                pytest.skip(
                    f"Azurite could not be installed or started: {log.read_text(errors='replace')[-500:]}"
                )
            if time.monotonic() > deadline:
                pytest.skip(f"Azurite did not listen on port {port} within {START_SECONDS} s")
            time.sleep(0.2)
        _RUNNING.append(Azurite(port))
        yield _RUNNING[0]
    finally:
        _RUNNING.clear()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
