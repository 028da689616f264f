"""Azurite, the Azure Storage emulator (Node, through ``npx``), as the Azure Blob stand-in.

:func:`start_azurite` starts its blob service on a loopback port in its own process group (its
queue and table services take free ports, so it never collides with another Azurite); the caller
waits for the port and kills the group when done (SIGKILL: Azurite ignores SIGTERM, and its data
lives in memory). The demo and the tests both start it this way.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ACCOUNT = "devstoreaccount1"
# Azurite's published development key (the same in every Azurite install; not a secret).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def connection_string(port: int) -> str:
    """The storage connection string of the blob service on ``port``."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )


def start_azurite(npx: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``npx --yes azurite@3`` with its blob service on ``port``, in memory, logging to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [
                npx,
                "--yes",
                "azurite@3",
                "--silent",
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(port),
                "--queuePort",
                "0",
                "--tablePort",
                "0",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
