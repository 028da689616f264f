"""Shared pytest fixtures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from lytics_sandbox.lytics import LyticsSandbox
    from lytics_sandbox.sftp import SFTPSandbox


@pytest.fixture(autouse=True, scope="session")
def ssh_connect_retries_without_pause() -> Iterator[None]:
    """Keep SSHHook's three connect attempts but drop its 3-5 s pause between them.

    A wrong SFTP password is tried three times by the official hook; the tests that break
    credentials on purpose would otherwise each wait about 8 s.
    """
    import tenacity
    from airflow.providers.ssh.hooks import ssh

    patch = pytest.MonkeyPatch()
    patch.setattr(ssh, "wait_fixed", lambda _seconds: tenacity.wait_none())
    patch.setattr(ssh, "wait_random", lambda _low, _high: tenacity.wait_none())
    yield
    patch.undo()


# ---------------------------------------------------------------------------------------------
# Sandbox fixtures: `lytics_sandbox` and `sftp_server` (loopback servers, started per test)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def lytics_sandbox() -> Iterator[LyticsSandbox]:
    """A running Lytics API emulator over the default synthetic account (token ``sandbox-token``)."""
    from lytics_sandbox.lytics import LyticsSandbox

    sandbox = LyticsSandbox()
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.faults.clear()
        sandbox.stop()


@dataclass(frozen=True)
class SFTPServerInfo:
    """Where the test SFTP server listens and how to log in."""

    host: str
    port: int
    username: str
    password: str
    root: Path
    sandbox: SFTPSandbox

    @property
    def conn_json(self) -> str:
        """Airflow connection JSON (for an ``AIRFLOW_CONN_*`` variable)."""
        return json.dumps(
            {
                "conn_type": "sftp",
                "host": self.host,
                "port": self.port,
                "login": self.username,
                "password": self.password,
                "extra": {"no_host_key_check": True},
            }
        )

    @property
    def conn_uri(self) -> str:
        """Airflow connection URI."""
        return f"sftp://{self.username}:{self.password}@{self.host}:{self.port}/?no_host_key_check=true"


@pytest.fixture
def sftp_server(tmp_path: Path) -> Iterator[SFTPServerInfo]:
    """A running SFTP server chrooted to a fresh ``tmp_path / "sftp"`` (user lytics / sandbox-pass)."""
    from lytics_sandbox.sftp import SFTPSandbox

    root = tmp_path / "sftp"
    server = SFTPSandbox(root)
    host, port = server.start()
    try:
        yield SFTPServerInfo(host, port, server.username, server.password or "", root, server)
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------
# End of sandbox fixtures
# ---------------------------------------------------------------------------------------------
