"""Atomic SFTP uploads and streamed downloads through Airflow's ``SFTPHook``.

An upload writes ``<folder>/.<name>.part``, checks the size the server reports, then renames it
onto ``<folder>/<name>`` with ``posix-rename@openssh.com`` (atomic replace). A consumer polling
the folder by wildcard therefore sees either no file or the whole file, never half of one, and
a retry simply uploads over the same temporary name and renames again. Servers without the
POSIX rename extension get a plain rename (after removing an older final file, the only moment
that is not atomic, and it is logged).

Transfers stream in 1 MiB reads with pipelined SFTP writes (no wait for each write's ack)
and prefetched reads, so memory stays bounded whatever the file size.
"""

from __future__ import annotations

import logging
import posixpath
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.providers.sftp.hooks.sftp import SFTPHook
    from paramiko import SFTPClient

log = logging.getLogger(__name__)
CHUNK_BYTES = 1024 * 1024
WINDOW_BYTES = 64 * 1024 * 1024
FAST_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


@contextmanager
def open_sftp(hook: SFTPHook) -> Iterator[SFTPClient]:
    """An SFTP session on the hook's SSH connection, tuned for bulk transfers.

    The connection (host, auth, host-key checks, proxy, retries) is the hook's own; the session
    gets a 64 MiB flow-control window so a high-latency link is not capped at window/RTT, and,
    unless the connection sets its own ``ciphers``, the keys are renegotiated once to prefer
    AES-GCM (about 40% less CPU per byte than AES-CTR + HMAC in paramiko; other ciphers stay
    acceptable, so servers without GCM are unaffected).
    """
    from airflow.providers.ssh.hooks.ssh import SSHHook
    from paramiko import SFTPClient

    client = SSHHook.get_conn(hook)
    try:
        transport = client.get_transport()
        if transport is None:
            raise ConnectionError("SSH transport closed before the SFTP session opened")
        if not hook.ciphers:
            options = transport.get_security_options()
            preferred = [c for c in FAST_CIPHERS if c in options.ciphers]
            if preferred and transport.remote_cipher not in FAST_CIPHERS:
                options.ciphers = (*preferred, *(c for c in options.ciphers if c not in preferred))
                transport.renegotiate_keys()
        sftp = SFTPClient.from_transport(transport, window_size=WINDOW_BYTES)
        if sftp is None:
            raise ConnectionError("the server refused the SFTP subsystem")
        try:
            yield sftp
        finally:
            sftp.close()
    finally:
        client.close()


@dataclass(frozen=True)
class UploadResult:
    """Where a file landed, its size and how long the transfer took."""

    remote_path: str
    bytes: int
    seconds: float

    @property
    def mb_per_second(self) -> float:
        """Throughput in MB/s."""
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0


def remote_path(folder: str, name: str) -> str:
    """``folder/name`` with POSIX separators (``""`` and ``"."`` mean the login directory)."""
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"invalid remote file name {name!r}")
    return posixpath.join(folder, name) if folder not in ("", ".") else name


def part_path(folder: str, name: str) -> str:
    """The temporary name an upload writes before the rename: ``folder/.name.part``."""
    return remote_path(folder, f".{name}.part")


def ensure_folder(sftp: SFTPClient, folder: str) -> None:
    """Fail with a clear message when ``folder`` is not a directory on the server."""
    if folder in ("", "."):
        return
    try:
        mode = sftp.stat(folder).st_mode
    except OSError:
        raise FileNotFoundError(
            f"SFTP folder {folder!r} does not exist on the server; create it or fix the job's `folder`"
        ) from None
    if mode is not None and not stat.S_ISDIR(mode):
        raise NotADirectoryError(f"SFTP path {folder!r} is not a folder; fix the job's `folder`")


def _send(sftp: SFTPClient, source: IO[bytes], target: str) -> int:
    sent = 0
    with sftp.open(target, "wb") as remote:
        remote.set_pipelined(True)
        while True:
            chunk = source.read(CHUNK_BYTES)
            if not chunk:
                break
            remote.write(chunk)
            sent += len(chunk)
    return sent


def _finalize(sftp: SFTPClient, temporary: str, final: str) -> None:
    """Move the uploaded temporary file onto its final name."""
    try:
        sftp.posix_rename(temporary, final)
        return
    except OSError as exc:
        log.warning("posix-rename unavailable on this server (%s); using plain rename", exc)
    try:
        sftp.rename(temporary, final)
    except OSError:
        log.warning("Replacing the existing %s (the server cannot rename over it atomically)", final)
        sftp.remove(final)
        sftp.rename(temporary, final)


def upload_file(hook: SFTPHook, local: Path, folder: str, name: str) -> UploadResult:
    """Upload ``local`` to ``folder/name`` atomically (temporary name, size check, rename)."""
    final = remote_path(folder, name)
    temporary = part_path(folder, name)
    size = local.stat().st_size
    started = time.monotonic()
    with open_sftp(hook) as sftp:
        ensure_folder(sftp, folder)
        with open(local, "rb") as source:
            sent = _send(sftp, source, temporary)
        landed = sftp.stat(temporary).st_size
        if sent != size or landed != size:
            raise OSError(f"upload of {final} incomplete: {landed} of {size} bytes on the server; retry")
        _finalize(sftp, temporary, final)
    result = UploadResult(final, size, time.monotonic() - started)
    log.info("Uploaded %s (%d bytes, %.1f MB/s)", final, size, result.mb_per_second)
    return result


def download_file(sftp: SFTPClient, remote: str, local: Path) -> int:
    """Download ``remote`` to ``local`` (prefetched, streamed; written via a ``.part`` + rename)."""
    part = local.with_name(f".{local.name}.part")
    with open(part, "wb") as target:
        sftp.getfo(remote, target, prefetch=True)
    part.replace(local)
    return local.stat().st_size
