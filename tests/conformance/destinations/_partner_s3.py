"""A partner file drop in a moto S3 bucket: the newest object is what the destination holds."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.conformance.destinations import ObjectStoreReadback, Stands, Target, failing


class PartnerObjects(ObjectStoreReadback):
    """The objects of the bucket, read by the partner's own key reader."""

    def __init__(
        self, objects: Callable[[], dict[str, bytes]], read_keys: Callable[[bytes], list[str]]
    ) -> None:
        super().__init__(objects)
        self.read_keys = read_keys

    def keys(self, body: bytes) -> list[str]:  # type: ignore[override]
        return self.read_keys(body)


def s3_drop_target(stands: Stands, config: dict[str, Any], read_keys: Callable[[bytes], list[str]]) -> Target:
    import boto3
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from botocore.client import Config

    secret = f"aws-{stands.name}-secret"
    bucket = f"conformance-{stands.name}"
    client = boto3.client(
        "s3",
        endpoint_url=stands.moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )
    client.create_bucket(Bucket=bucket)
    conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": secret,
        "extra": {"endpoint_url": stands.moto_endpoint, "region_name": "us-east-1"},
    }
    stands.monkeypatch.setenv("AIRFLOW_CONN_AWS_CONFORMANCE", json.dumps(conn))

    def objects() -> dict[str, bytes]:
        listing = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        listing.sort(key=lambda o: (o["LastModified"], o["Key"]))
        return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing}

    config = {**config, "aws_conn_id": "aws_conformance", "bucket": bucket}
    return PartnerObjects(objects, read_keys).target(
        config, secret, lambda: failing(stands.monkeypatch, S3Hook, "load_file")
    )
