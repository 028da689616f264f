"""A real SFTP server on loopback (asyncssh), chrooted to a local directory.

The server runs its own asyncio event loop in a daemon thread. It accepts password auth for one
user and, optionally, public-key auth with ``authorized_client_keys``. Only the SFTP subsystem is
offered (no shell, exec, SCP or forwarding).

Rename semantics follow OpenSSH: the plain SFTP ``rename`` refuses to replace an existing file,
``posix-rename@openssh.com`` (paramiko ``SFTPClient.posix_rename``) replaces it atomically. Pass
``rename_overwrites=True`` to make the plain ``rename`` replace too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Self

import asyncssh

HOST = "127.0.0.1"


class _SandboxSFTP(asyncssh.SFTPServer):
    """SFTP session confined to the sandbox root."""

    rename_overwrites = False

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        if self.rename_overwrites:
            return self.posix_rename(oldpath, newpath)  # type: ignore[return-value]
        return super().rename(oldpath, newpath)  # type: ignore[return-value]


class _SandboxSSHServer(asyncssh.SSHServer):
    """Password and public-key auth for a single user."""

    def __init__(self, sandbox: SFTPSandbox) -> None:
        self._sandbox = sandbox
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._sandbox._connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._sandbox._connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return self._sandbox.password is not None

    def validate_password(self, username: str, password: str) -> bool:
        expected = self._sandbox.password or ""
        ok = hmac.compare_digest(password.encode(), expected.encode())
        return ok and username == self._sandbox.username

    def public_key_auth_supported(self) -> bool:
        return bool(self._sandbox.client_keys)

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        if username != self._sandbox.username:
            return False
        wanted = key.public_data
        return any(k.public_data == wanted for k in self._sandbox.client_keys)


def _load_keys(keys: Iterable[Any] | str | os.PathLike[str] | None) -> list[asyncssh.SSHKey]:
    """Accept SSHKey objects, OpenSSH public key strings, or paths to ``.pub``/authorized_keys files."""
    if keys is None:
        return []
    if isinstance(keys, str | os.PathLike):
        keys = [keys]
    out: list[asyncssh.SSHKey] = []
    for item in keys:
        if isinstance(item, asyncssh.SSHKey):
            out.append(item if item.public_data else item.convert_to_public())
        elif isinstance(item, os.PathLike) or (isinstance(item, str) and Path(item).is_file()):
            out.extend(asyncssh.read_public_key_list(str(item)))
        else:
            out.append(asyncssh.import_public_key(str(item)))
    return out


class SFTPSandbox:
    """SFTP server on ``127.0.0.1`` serving ``root`` as ``/``."""

    def __init__(
        self,
        root: Path | str,
        username: str = "lytics",
        password: str | None = "sandbox-pass",
        authorized_client_keys: Iterable[Any] | str | os.PathLike[str] | None = None,
        host: str = HOST,
        port: int = 0,
        host_key_path: Path | str | None = None,
        rename_overwrites: bool = False,
    ) -> None:
        self.root = Path(root)
        self.username = username
        self.password = password
        self.client_keys = _load_keys(authorized_client_keys)
        self.host = host
        self.port = port
        self.host_key_path = Path(host_key_path) if host_key_path else None
        self.rename_overwrites = rename_overwrites
        self.host_key: asyncssh.SSHKey | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncssh.SSHAcceptor | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[asyncssh.SSHServerConnection] = set()

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> tuple[str, int]:
        """Start listening; returns ``(host, port)``."""
        if self._thread is not None:
            return self.host, self.port
        self.root.mkdir(parents=True, exist_ok=True)
        self.host_key = self._host_key()
        quiet = logging.getLogger("asyncssh")
        if quiet.level == logging.NOTSET:
            quiet.setLevel(logging.WARNING)
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(self._listen())
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="SFTPSandbox", daemon=True)
        self._thread.start()
        ready.wait(timeout=30)
        if failure or self._server is None:
            self._thread.join(timeout=5)
            self._thread = self._loop = None
            raise RuntimeError("SFTP sandbox failed to start") from (failure[0] if failure else None)
        return self.host, self.port

    def stop(self) -> None:
        """Close the listener and every open session, then stop the loop thread."""
        loop, thread, server = self._loop, self._thread, self._server
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            if server is not None:
                server.close()
            for conn in list(self._connections):
                conn.close()
            for conn in list(self._connections):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.wait_closed(), 5)
            if server is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server.wait_closed(), 5)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop = self._thread = self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers ------------------------------------------------------------------------------
    @property
    def host_key_fingerprint(self) -> str:
        return self.host_key.get_fingerprint() if self.host_key else ""

    def path(self, remote: str) -> Path:
        """Local path of a remote (chrooted) path."""
        return self.root / remote.lstrip("/")

    def connection_extra(self) -> dict[str, Any]:
        return {"no_host_key_check": True}

    def _host_key(self) -> asyncssh.SSHKey:
        path = self.host_key_path
        if path is not None and path.is_file():
            return asyncssh.read_private_key(str(path))
        key = asyncssh.generate_private_key("ssh-ed25519")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            key.write_private_key(str(path))
            path.chmod(0o600)
        return key

    async def _listen(self) -> asyncssh.SSHAcceptor:
        root = str(self.root.resolve()).encode()
        overwrite = self.rename_overwrites

        def sftp_factory(chan: asyncssh.SSHServerChannel) -> asyncssh.SFTPServer:
            server = _SandboxSFTP(chan, chroot=root)
            server.rename_overwrites = overwrite
            return server

        return await asyncssh.listen(
            self.host,
            self.port,
            server_host_keys=[self.host_key],
            server_factory=lambda: _SandboxSSHServer(self),
            sftp_factory=sftp_factory,
            allow_scp=False,
            agent_forwarding=False,
            x11_forwarding=False,
            login_timeout=30,
        )
