"""Shared fixtures of the partner file-drop tests: one SFTP server per session, a folder per test,
and a hand-made scan of known members so every file can be compared byte for byte."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lytics_provider.pipeline.snapshot import Snapshot
from tests.helpers import make_context

AUDIENCE = {"id": "a1", "name": "High Value", "slug": "high_value"}
"""The audience of :func:`scan_of` (its file names read ``High_Value`` / ``high_value``)."""
CONN_ID = "partner_sftp"


@dataclass(frozen=True)
class Drop:
    """An SFTP folder of the session server, with the connection ``partner_sftp`` pointing at it."""

    root: Path
    folder: str

    @property
    def path(self) -> Path:
        return self.root / self.folder.strip("/")

    def names(self) -> list[str]:
        return sorted(p.name for p in self.path.iterdir())

    def read(self, name: str) -> bytes:
        return (self.path / name).read_bytes()


@pytest.fixture(scope="session")
def partner_sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from lytics_sandbox.sftp import SFTPSandbox

    server = SFTPSandbox(tmp_path_factory.mktemp("partner-sftp"))
    host, port = server.start()
    server.host, server.port = host, port
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def drop(partner_sftp_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Drop:
    """A fresh folder on the session SFTP server and this test's data directory."""
    server = partner_sftp_server
    folder = f"/t{uuid.uuid4().hex[:10]}"
    (server.root / folder.strip("/")).mkdir()
    conn = {
        "conn_type": "sftp",
        "host": server.host,
        "port": server.port,
        "login": server.username,
        "password": server.password,
        "extra": {"no_host_key_check": True},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    return Drop(server.root, folder)


def scan_of(
    tmp_path: Path,
    members: Sequence[dict[str, Any]],
    audience: dict[str, Any] | None = None,
    path: Path | None = None,
    **params: Any,
) -> dict[str, Any]:
    """A run context whose ``scan`` XCom is a snapshot of ``members`` (run of 2026-11-23 00:00 UTC).

    ``path``: where the snapshot goes (a job's run directory, for runs that are committed).
    """
    path = path or tmp_path / f"snap-{uuid.uuid4().hex[:6]}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    with Snapshot(path) as snapshot:
        snapshot.add_page(list(members), "")
    scan = {"snapshot": str(path), "members": len(members), "audience": dict(audience or AUDIENCE)}
    return make_context(xcoms={"scan": scan}, params=params)


def rejects_of(report: dict[str, Any]) -> list[tuple[str, str]]:
    """``(member id, reason)`` of each line of the run's rejects file."""
    lines = Path(report["rejects_file"]).read_text().splitlines()
    return [(json.loads(line)["id"], json.loads(line)["reason"]) for line in lines]
