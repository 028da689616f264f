"""Fixtures for the warehouse and object-store tests: moto S3 server, PostgreSQL, GCS emulator.

Import the ones a module needs (``from tests.integration.conftest_warehouse import ...``).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from lytics_provider.operators.lytics import LyticsAudienceScanOperator
from lytics_provider.pipeline import http
from tests.helpers import lytics_conn, make_context, run_task

PG_DSN = os.environ.get("LYTICS_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server (S3, IAM, STS) on a free loopback port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket and an ``aws_default`` connection pointing at the moto server."""
    import boto3

    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": moto_endpoint, "region_name": "us-east-1"},
            }
        ),
    )
    bucket = f"lytics-{uuid.uuid4().hex[:12]}"
    s3_client(moto_endpoint).create_bucket(Bucket=bucket)
    _ = boto3
    return bucket


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client on the moto server (for test assertions)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@pytest.fixture
def pg_schema(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh schema in the local PostgreSQL and ``postgres_default``/``redshift_default`` connections.

    Skips when no PostgreSQL accepts connections on 127.0.0.1:5432.
    """
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        conn = psycopg2.connect(PG_DSN, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_DSN!r}: {exc}".strip())
    conn.autocommit = True
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {schema}")
    params = dict(item.split("=", 1) for item in PG_DSN.split())
    spec = {
        "conn_type": "postgres",
        "host": params.get("host", "127.0.0.1"),
        "port": int(params.get("port", 5432)),
        "login": params.get("user", "postgres"),
        "password": params.get("password", ""),
        "schema": params.get("dbname", "test"),
        "extra": {"options": f"-c search_path={schema}"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_DEFAULT", json.dumps(spec))
    monkeypatch.setenv("AIRFLOW_CONN_REDSHIFT_DEFAULT", json.dumps(spec))
    try:
        yield schema
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()


def pg_connect(schema: str) -> Any:
    """A new psycopg2 connection with ``schema`` first on the search path."""
    import psycopg2

    return psycopg2.connect(PG_DSN, options=f"-c search_path={schema}")


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """The ``gcp-storage-emulator`` server on a free loopback port (in memory)."""
    server_mod = pytest.importorskip("gcp_storage_emulator.server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = server_mod.create_server("127.0.0.1", port, in_memory=True)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def gcs_bucket(gcs_emulator: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the emulator; ``STORAGE_EMULATOR_HOST`` set so GCSHook talks to it."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    monkeypatch.setenv(
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT",
        json.dumps({"conn_type": "google_cloud_platform", "extra": {"project": "test-project"}}),
    )
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project="test-project", credentials=AnonymousCredentials())
    bucket = f"lytics-{uuid.uuid4().hex[:12]}"
    client.create_bucket(bucket)
    return bucket


@pytest.fixture
def lytics_env(lytics_sandbox: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    """The Lytics connection, a private data directory and fast HTTP back-off."""
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics_sandbox.base_url))
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(http.RetryPolicy, "backoff", lambda self, attempt: 0.01)
    return lytics_sandbox


def scanned_context(
    audience: str = "high_value", job_id: str = "job", day: int = 23, **params: Any
) -> dict[str, Any]:
    """Run the scan task for the run of 2026-11-``day`` and return a context holding its XCom."""
    import pendulum

    logical = pendulum.datetime(2026, 11, day, tz="UTC")
    context = make_context(run_id=f"scheduled__{logical.isoformat()}", params=params, logical_date=logical)
    run_task(
        LyticsAudienceScanOperator(task_id="scan", audience=audience, job_id=job_id, page_size=100), context
    )
    return context


class Gate:
    """Two events for pausing a load at a chosen point while a test looks from another connection."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.release = threading.Event()


@pytest.fixture(scope="session")
def pgp_keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """``(public_key, private_key, passphrase)``: a fresh ed25519/cv25519 key made with gpg."""
    import shutil
    import subprocess

    gpg = shutil.which("gpg")
    if not gpg:
        pytest.skip("gpg binary not installed")
    home = tmp_path_factory.mktemp("gpg")
    home.chmod(0o700)
    passphrase = "warehouse-test-passphrase"
    base = [gpg, "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--passphrase", passphrase]
    uid = "Warehouse Test <warehouse@example.com>"
    subprocess.run(
        [*base, "--quick-gen-key", uid, "ed25519", "sign", "never"], check=True, capture_output=True
    )
    fpr = (
        subprocess.run(
            [gpg, "--homedir", str(home), "--with-colons", "--list-keys"],
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.split("fpr:::::::::")[1]
        .split(":")[0]
    )
    subprocess.run(
        [*base, "--quick-add-key", fpr, "cv25519", "encr", "never"], check=True, capture_output=True
    )
    public = subprocess.run(
        [*base, "--armor", "--export", fpr], check=True, capture_output=True, text=True
    ).stdout
    private = subprocess.run(
        [*base, "--armor", "--export-secret-keys", fpr], check=True, capture_output=True, text=True
    ).stdout
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False, capture_output=True)
    return public, private, passphrase


def install_stream_events(sandbox: Any, streams: dict[str, list[dict[str, Any]]]) -> None:
    """Give the sandbox's streams these events (name → events, oldest first)."""
    for name, events in streams.items():
        sandbox.add_stream_events(name, events)
