"""A file drop on the SFTP stand-in: the newest file is what the destination holds."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tests.conformance.destinations import Stands, Target


def sftp_drop_target(
    stands: Stands, config: dict[str, Any], read_keys: Callable[[bytes], list[str]], pattern: str = "*"
) -> Target:
    """``pattern``: the data files (a destination's trigger files are left out of its state; a
    ``.<name>.part`` left by an upload always counts)."""
    from lytics_sandbox import sftp as sftp_module

    server = stands.sftp_stand
    secret = f"sftp-{stands.name}-pw"
    server.password = secret
    folder = server.root / stands.name
    folder.mkdir()
    conn = {
        "conn_type": "sftp",
        "host": server.host,
        "port": server.port,
        "login": server.username,
        "password": secret,
        "extra": {"no_host_key_check": True},
    }
    stands.monkeypatch.setenv("AIRFLOW_CONN_SFTP_CONFORMANCE", json.dumps(conn))

    def files() -> dict[str, bytes]:
        found = {*folder.glob(pattern), *folder.glob(".*.part")}
        return {p.name: p.read_bytes() for p in sorted(found) if p.is_file()}

    def newest() -> list[str]:
        found = sorted(
            (p for p in folder.glob(pattern) if not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime_ns,
        )
        return read_keys(found[-1].read_bytes()) if found else []

    def received() -> int:
        return sum(len(read_keys(body)) for name, body in files().items() if not name.startswith("."))

    def break_credentials() -> None:
        server.password = f"{secret}-rotated"

    @contextmanager
    def interrupt() -> Iterator[None]:
        original = sftp_module._SandboxSFTP.write
        writes = {"n": 0}

        def failing_write(self: Any, file_obj: Any, offset: int, data: bytes) -> Any:
            writes["n"] += 1
            if writes["n"] >= 1:
                raise OSError("connection lost mid-upload")
            return original(self, file_obj, offset, data)

        stands.monkeypatch.setattr(sftp_module._SandboxSFTP, "write", failing_write, raising=False)
        try:
            yield
        finally:
            stands.monkeypatch.setattr(sftp_module._SandboxSFTP, "write", original, raising=False)

    config = {**config, "sftp_conn_id": "sftp_conformance", "folder": f"/{stands.name}"}
    return Target(config, secret, lambda: set(newest()), received, files, break_credentials, interrupt)
