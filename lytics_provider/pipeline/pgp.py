"""PGP encryption and decryption through the ``gpg`` binary, file to file, streamed by gpg.

Every use gets a throwaway keyring (``--homedir`` in a private temporary directory, removed
afterwards, its gpg-agent stopped), so no key outlives the step and nothing touches the
worker's own keyring. Passphrases reach gpg through a pipe (``--passphrase-fd``), never on a
command line, in the environment or on disk. Errors carry gpg's status text, which names keys
by id only; key material and passphrases never appear in a log line or an exception.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from types import TracebackType

GPG_BINARY = os.environ.get("LYTICS_GPG_BINARY", "/usr/bin/gpg")
PGP_SUFFIXES = (".pgp", ".gpg", ".asc")
_FINGERPRINT = re.compile(r"^fpr:(?:[^:]*:){8}([0-9A-F]{40,64}):", re.MULTILINE)
_TIMEOUT = 3600


class PGPError(RuntimeError):
    """gpg refused: bad key, wrong passphrase, data not encrypted for this key, ..."""


def encrypted_name(name: str) -> str:
    """The file name after encryption: ``.pgp`` is appended (``x.csv.gz`` → ``x.csv.gz.pgp``)."""
    return f"{name}.pgp"


def strip_pgp_suffix(name: str) -> tuple[str, bool]:
    """``(name without .pgp/.gpg/.asc, True)`` for an encrypted file name, else ``(name, False)``."""
    lower = name.lower()
    for suffix in PGP_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)], True
    return name, False


class Keyring:
    """A temporary gpg home directory; use as a context manager."""

    def __init__(self, binary: str = GPG_BINARY) -> None:
        if not Path(binary).exists() and shutil.which(binary) is None:
            raise PGPError(f"gpg binary not found at {binary}; install gnupg or set LYTICS_GPG_BINARY")
        self.binary = binary
        # Short path: gpg-agent's socket path must stay under the UNIX socket length limit.
        self.home = Path(tempfile.mkdtemp(prefix="lgpg-", dir="/tmp" if Path("/tmp").is_dir() else None))
        os.chmod(self.home, 0o700)
        # A fixed S2K count spares the agent its start-up calibration (seconds on a busy worker);
        # it only protects the copy of the key inside this keyring, which is deleted after use.
        (self.home / "gpg-agent.conf").write_text("s2k-count 65536\n", encoding="utf-8")

    def __enter__(self) -> Keyring:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the keyring's gpg-agent and remove the directory with every key in it."""
        gpgconf = shutil.which("gpgconf") or "/usr/bin/gpgconf"
        if Path(gpgconf).exists():
            subprocess.run(
                [gpgconf, "--homedir", str(self.home), "--kill", "all"],
                capture_output=True,
                check=False,
                timeout=30,
            )
        shutil.rmtree(self.home, ignore_errors=True)

    def _run(
        self, args: list[str], what: str, stdin: bytes | None = None, passphrase: str | None = None
    ) -> str:
        command = [self.binary, "--homedir", str(self.home), "--batch", "--yes", "--no-tty"]
        pass_fds: tuple[int, ...] = ()
        read_fd = write_fd = None
        if passphrase is not None:
            read_fd, write_fd = os.pipe()
            pass_fds = (read_fd,)
            command += ["--pinentry-mode", "loopback", "--passphrase-fd", str(read_fd)]
        command += args
        writer = None
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=pass_fds,
            )
            if write_fd is not None:
                os.close(read_fd)  # type: ignore[arg-type]
                read_fd = None
                writer = threading.Thread(target=_feed, args=(write_fd, (passphrase or "").encode() + b"\n"))
                write_fd = None
                writer.start()
            out, err = process.communicate(stdin, timeout=_TIMEOUT)
        finally:
            for fd in (read_fd, write_fd):
                if fd is not None:
                    os.close(fd)
            if writer is not None:
                writer.join()
        if process.returncode != 0:
            raise PGPError(f"{what} failed: {_status_text(err)}")
        return out.decode("utf-8", "replace")

    def import_key(self, armored: str, what: str = "key") -> list[str]:
        """Import an armored public or private key; return the fingerprints now in the keyring."""
        if "-----BEGIN PGP" not in armored:
            raise PGPError(f"the {what} is not an ASCII-armored PGP key (it must start with -----BEGIN PGP)")
        self._run(["--import"], f"importing the {what}", stdin=armored.encode())
        listing = self._run(["--with-colons", "--fingerprint", "--list-keys"], "listing keys")
        return _FINGERPRINT.findall(listing)

    def encrypt_file(self, source: Path, target: Path, recipients: list[str]) -> None:
        """Encrypt ``source`` for ``recipients`` (fingerprints) into ``target`` (binary OpenPGP)."""
        if not recipients:
            raise PGPError("no public key to encrypt for")
        args = ["--trust-model", "always", "--compress-algo", "none", "--output", str(target)]
        for fingerprint in recipients:
            args += ["--recipient", fingerprint]
        self._run([*args, "--encrypt", str(source)], f"encrypting {source.name}")

    def decrypt_file(self, source: Path, target: Path, passphrase: str | None) -> None:
        """Decrypt ``source`` into ``target`` with the imported private key."""
        self._run(
            ["--output", str(target), "--decrypt", str(source)],
            f"decrypting {source.name}",
            passphrase=passphrase or "",
        )


def _feed(fd: int, data: bytes) -> None:
    try:
        os.write(fd, data)
    except OSError:
        pass
    finally:
        os.close(fd)


def _status_text(stderr: bytes) -> str:
    """gpg's own messages, shortened (they name key ids, never key material or passphrases)."""
    lines = [
        line.strip()
        for line in stderr.decode("utf-8", "replace").splitlines()
        if line.startswith("gpg:") and "encrypted with" not in line
    ]
    return "; ".join(lines[-3:])[:500] or "no message from gpg"


def encrypt_file(public_key: str, source: Path, target: Path, binary: str = GPG_BINARY) -> None:
    """Encrypt ``source`` into ``target`` for every key in the armored ``public_key``."""
    with Keyring(binary) as keyring:
        fingerprints = keyring.import_key(public_key, "public key")
        keyring.encrypt_file(source, target, fingerprints)


def decrypt_file(
    private_key: str, passphrase: str | None, source: Path, target: Path, binary: str = GPG_BINARY
) -> None:
    """Decrypt ``source`` into ``target`` with the armored ``private_key`` and its passphrase."""
    with Keyring(binary) as keyring:
        keyring.import_key(private_key, "private key")
        keyring.decrypt_file(source, target, passphrase)


_ARMOR = re.compile(r"(-----BEGIN PGP [A-Z ]+-----)(.*?)(-----END PGP [A-Z ]+-----)", re.DOTALL)


def normalize_armor(text: str) -> str:
    """Repair an armored key whose line breaks were lost or escaped on the way into a connection.

    Handles literal ``\\n`` sequences, CRLF, and keys pasted into a single-line field (every line
    break removed) as long as the block has no armor headers, which is what gpg exports.
    """
    text = text.replace("\\r\\n", "\n").replace("\\n", "\n").replace("\r\n", "\n").strip()
    match = _ARMOR.search(text)
    if match is None or "\n" in match.group(2).strip("\n") or ":" in match.group(2):
        return text + "\n"
    body = re.sub(r"\s+", "", match.group(2))
    checksum = ""
    if len(body) > 5 and body[-5] == "=" and len(body[:-5]) % 4 == 0:
        body, checksum = body[:-5], body[-5:]
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([match.group(1), "", *lines, *([checksum] if checksum else []), match.group(3)]) + "\n"
