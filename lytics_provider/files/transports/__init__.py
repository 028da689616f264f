"""Where a file drop lands: one small class per destination, each placing a file atomically.

A transport names the target of a file (:meth:`Transport.describe`) and uploads a complete
local file under that name so that a reader never sees part of it (:meth:`Transport.upload`):
SFTP writes ``.<name>.part`` and renames it, S3 and GCS publish an object only when its upload
completes, Azure Blob commits the staged blocks in one call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from lytics_provider.pipeline.sftp_upload import UploadResult

__all__ = ["Transport", "UploadResult"]


class Transport(Protocol):
    """A destination for whole files."""

    def describe(self, name: str) -> str:
        """Where a file called ``name`` lands (a remote path or a URL), for reports and logs."""
        ...

    def upload(self, local: Path, name: str) -> UploadResult:
        """Upload ``local`` as ``name``, atomically; replaces an earlier file of that name."""
        ...
