"""S3 export on moto: a gzip CSV object per run; a lost connection fails the upload before S3 publishes."""

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


def s3(stands: Stands) -> Target:
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
    config: dict[str, Any] = {
        "type": "s3_export",
        "audience": AUDIENCE,
        "aws_conn_id": "aws_conformance",
        "bucket": bucket,
        "fields": ["_uid", "email", "first_name"],
        "compression": "gz",
    }

    def objects() -> dict[str, bytes]:
        listing = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        listing.sort(key=lambda o: (o["LastModified"], o["Key"]))
        return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing}

    return ObjectStoreReadback(objects).target(
        config, secret, lambda: failing(stands.monkeypatch, S3Hook, "load_file")
    )


DESTINATION = Destination("s3_export", "s3_export", "replace", s3, uid, rejects=False, stand="moto_endpoint")
