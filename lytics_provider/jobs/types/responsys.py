"""Responsys: Import Activity Data, a preset of the SFTP file import into ``responsys_events``.

Responsys Connect drops Contact Event Data files on the Responsys SFTP server (optionally zipped
and PGP encrypted, "new files every 6 hours"); each run imports the files not imported before.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lytics_provider.jobs.types.files import FileServiceImportJob


class ResponsysImportJob(FileServiceImportJob):
    """Responsys: Import Activity Data from the Responsys SFTP Server (with PGP) into responsys_events."""

    type: Literal["responsys_import"]  # type: ignore[assignment]
    sftp_conn_id: str = Field(
        min_length=1,
        description="Airflow SFTP connection holding the authorization's Host, Port (default 22), Username "
        "and Private Key.",
    )
    folder: str = Field(default="", description="Folder: where Responsys Connect puts the files.")
    pattern: str = Field(
        default="*_????????_??????.*",
        min_length=1,
        description="Glob of the event files, named accountID_EVENT_YYYYMMDD_HH24MISS.txt (.zip, .gpg).",
    )
    exclude: list[str] = Field(
        default=["*.ready", "*.cnt", "*.count"],
        description="Globs of Connect's ready and count files, which are never imported.",
    )
    stream: str = Field(
        default="responsys_events", pattern=r"^[A-Za-z0-9_.-]+$", description="Lytics stream."
    )
    pgp_conn_id: str | None = Field(
        default=None,
        description="Responsys SFTP Server with PGP: lytics_pgp connection whose private key decrypts "
        ".gpg files.",
    )
