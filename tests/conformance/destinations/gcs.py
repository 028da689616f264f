"""GCS export on the GCS emulator: a gzip CSV object per run; a lost connection fails the upload."""

from __future__ import annotations

import json
from typing import Any

from tests.conformance.destinations import (
    AUDIENCE,
    Destination,
    ObjectStoreReadback,
    Stands,
    Target,
    failing,
    uid,
)


def gcs(stands: Stands) -> Target:
    from airflow.providers.google.cloud.hooks.gcs import GCSHook
    from airflow.providers.google.common.hooks.base_google import GoogleBaseHook
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    stands.monkeypatch.setenv("STORAGE_EMULATOR_HOST", stands.gcs_emulator)
    stands.monkeypatch.setattr(
        GoogleBaseHook,
        "get_credentials_and_project_id",
        lambda self: (AnonymousCredentials(), "test-project"),
    )
    secret = f"gcp-{stands.name}-secret"
    conn = {"conn_type": "google_cloud_platform", "password": secret, "extra": {"project": "test-project"}}
    stands.monkeypatch.setenv("AIRFLOW_CONN_GCP_CONFORMANCE", json.dumps(conn))
    client = storage.Client(project="test-project", credentials=AnonymousCredentials())
    bucket = f"conformance-{stands.name}"
    client.create_bucket(bucket)
    config: dict[str, Any] = {
        "type": "gcs_export",
        "audience": AUDIENCE,
        "gcp_conn_id": "gcp_conformance",
        "bucket": bucket,
        "fields": ["_uid", "email", "first_name"],
        "compression": "gz",
    }

    def objects() -> dict[str, bytes]:
        blobs = sorted(client.list_blobs(bucket), key=lambda b: (b.updated, b.name))
        return {b.name: b.download_as_bytes(raw_download=True) for b in blobs}

    return ObjectStoreReadback(objects).target(
        config, secret, lambda: failing(stands.monkeypatch, GCSHook, "upload")
    )


DESTINATION = Destination(
    "gcs_export", "gcs_export", "replace", gcs, uid, rejects=False, stand="gcs_emulator"
)
