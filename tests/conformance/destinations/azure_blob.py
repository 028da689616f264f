"""Azure Blob Storage CSV export on Azurite: a gzip CSV blob per run; a lost connection while the
blocks are staged leaves no blob, and a missing container fails the task at once."""

from __future__ import annotations

from typing import Any

from lytics_sandbox.azurite import ACCOUNT_KEY
from tests.conformance.destinations import (
    AUDIENCE,
    Destination,
    ObjectStoreReadback,
    Stands,
    Target,
    failing,
    uid,
)
from tests.integration.azurite import azurite  # noqa: F401 - the session stand-in


def azure_blob(stands: Stands) -> Target:
    from azure.storage.blob import BlobClient, BlobServiceClient

    service = BlobServiceClient.from_connection_string(stands.azurite.connection_string)
    container = service.create_container(f"conformance-{stands.name}")
    stands.cleanup.callback(container.delete_container)
    stands.monkeypatch.setenv("AIRFLOW_CONN_WASB_CONFORMANCE", stands.azurite.conn_json)
    config: dict[str, Any] = {
        "type": "azure_blob_export_csv",
        "audience": AUDIENCE,
        "wasb_conn_id": "wasb_conformance",
        "container": container.container_name,
        "user_fields": ["_uid", "email", "first_name"],
        "compression": "gz",
    }

    def objects() -> dict[str, bytes]:
        blobs = sorted(container.list_blobs(), key=lambda b: (b.last_modified, b.name))
        return {b.name: container.download_blob(b.name).readall() for b in blobs}

    target = ObjectStoreReadback(objects).target(
        config, ACCOUNT_KEY, lambda: failing(stands.monkeypatch, BlobClient, "stage_block")
    )

    def break_container() -> None:
        config["container"] = f"{config['container']}-missing"

    target.break_credentials = break_container
    return target


DESTINATION = Destination(
    "azure_blob_export_csv",
    "azure_blob_export_csv",
    "replace",
    azure_blob,
    uid,
    rejects=False,
    stand="azurite",
)
