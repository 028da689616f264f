"""SFTP through Airflow's ``SFTPHook``: ``.<name>.part``, size check, atomic rename."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lytics_provider.pipeline.sftp_upload import UploadResult, remote_path, upload_file


@dataclass(frozen=True)
class SftpTransport:
    """Upload into ``folder`` of the ``sftp_conn_id`` server (see ``pipeline.sftp_upload``).

    :param sftp_conn_id: Airflow SFTP connection.
    :param folder: remote folder; empty for the login directory.
    """

    sftp_conn_id: str
    folder: str = ""

    def describe(self, name: str) -> str:
        """``folder/name``."""
        return remote_path(self.folder, name)

    def upload(self, local: Path, name: str) -> UploadResult:
        """Upload through ``folder/.name.part`` and rename onto ``folder/name``."""
        from airflow.providers.sftp.hooks.sftp import SFTPHook

        return upload_file(SFTPHook(ssh_conn_id=self.sftp_conn_id), local, self.folder, name)
