"""Azure Blob Storage through the official ``WasbHook`` (apache-airflow-providers-microsoft-azure).

The file goes up as staged blocks (``Put Block``, 8 MiB each, read one at a time) and becomes the
blob in one ``Put Block List`` commit: until the commit the blob is absent or keeps its previous
content, so a reader never sees part of a file. Block ids depend only on the block's position,
so a retried upload restages the same ids (uncommitted blocks are discarded by Azure after a
week, or replaced by the next commit).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from pathlib import Path

from lytics_provider.files.azure_container import container_must_exist
from lytics_provider.pipeline.object_files import join_key
from lytics_provider.pipeline.sftp_upload import UploadResult

BLOCK_BYTES = 8 * 1024 * 1024


def block_id(index: int) -> str:
    """The id of the ``index``-th block (base64 of a fixed-width number, as Azure requires)."""
    return base64.b64encode(f"lytics-{index:08d}".encode()).decode()


@dataclass(frozen=True)
class AzureBlobTransport:
    """Upload to ``{container}/{directory}/{name}`` of the ``wasb_conn_id`` storage account.

    :param container: blob container name (it must exist).
    :param directory: blob name prefix.
    :param wasb_conn_id: Airflow Azure Blob Storage (``wasb``) connection.
    :param block_bytes: size of each staged block.
    """

    container: str
    directory: str = ""
    wasb_conn_id: str = "wasb_default"
    block_bytes: int = BLOCK_BYTES

    def describe(self, name: str) -> str:
        """``wasb://{container}/{blob}``."""
        return f"wasb://{self.container}/{join_key(self.directory, name)}"

    def upload(self, local: Path, name: str) -> UploadResult:
        """Stage ``local`` block by block and commit the blocks as the blob ``name``."""
        from airflow.providers.microsoft.azure.hooks.wasb import WasbHook
        from azure.storage.blob import BlobBlock

        started = time.monotonic()
        blob_name = join_key(self.directory, name)
        blob = WasbHook(wasb_conn_id=self.wasb_conn_id).blob_service_client.get_blob_client(
            container=self.container, blob=blob_name
        )
        blocks: list[BlobBlock] = []
        size = 0
        with container_must_exist(self.container):
            with open(local, "rb") as source:
                while chunk := source.read(self.block_bytes):
                    ident = block_id(len(blocks))
                    blob.stage_block(ident, chunk, length=len(chunk))
                    blocks.append(BlobBlock(block_id=ident))
                    size += len(chunk)
            blob.commit_block_list(blocks)
        landed = blob.get_blob_properties().size
        if landed != size or size != local.stat().st_size:
            raise OSError(f"upload of {self.describe(name)} incomplete: {landed} of {size} bytes; retry")
        return UploadResult(self.describe(name), size, time.monotonic() - started)
