"""The registered destinations: how to configure a job of each type against its stand-in, and how
to read back what the stand-in received.

Register a destination by adding a :class:`Destination` to :data:`DESTINATIONS`. ``setup`` gets the
shared :class:`Stands` (servers started once per session) and returns a :class:`Target` for one
test: the job config, the secret that must never reach a log, and readers of the stand-in's state.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer

AUDIENCE = "conformance"
Semantic = Literal["churn", "replace"]
"""``churn``: a Keep Updated run sends only enters (and exits, when the destination removes them);
``replace``: each run writes the whole audience to one place (a new file, or the swapped-in table)
and leaves everything else as it was."""


@dataclass
class Stands:
    """The stand-ins, each started once per session, and the test's private names."""

    lytics: Any
    sftp: Any = None
    dotdigital: Any = None
    icontact: Any = None
    moto_endpoint: str | None = None
    gcs: str | None = None
    monkeypatch: Any = None
    cleanup: ExitStack = field(default_factory=ExitStack)
    """Closed after the test: context managers a destination entered for it."""
    name: str = field(default_factory=lambda: f"c{uuid.uuid4().hex[:10]}")


@dataclass
class Target:
    """One destination set up for one test."""

    config: dict[str, Any]
    secret: str
    held: Callable[[], set[str]]
    """Keys of the members the destination holds now (sync) or in its newest file (file drop)."""
    received: Callable[[], int]
    """Member rows the destination has accepted since the test began (every send counts)."""
    state: Callable[[], dict[str, bytes]]
    """Everything at the destination, to show that a run changed nothing else."""
    break_credentials: Callable[[], None]
    """Make the destination refuse the job permanently (a wrong password, token or bucket)."""
    interrupt: Callable[[], Any]
    """A context manager: delivery fails part-way while it is active."""


@dataclass(frozen=True)
class Destination:
    """A destination's registration in the conformance suite."""

    name: str
    job_type: str
    semantic: Semantic
    setup: Callable[[Stands], Target]
    key: Callable[[dict[str, Any]], str | None]
    """The key the destination holds a member under; None when the member must land in rejects."""
    removes_exits: bool = False
    rejects: bool = True
    """Members can be rejected (bad rows land in a rejects file with reasons)."""
    stand: str = ""
    """The stand-in fixture the destination needs: sftp, dotdigital, icontact, moto, gcs or lytics (none)."""
    interruptible: bool = True
    """``Target.interrupt`` makes a delivery fail part-way (False: no fault injection in the stand-in yet)."""


def valid_email(member: dict[str, Any]) -> str | None:
    email = member.get("email") or ""
    return email if "@" in email else None


def count_bodies(server: SandboxHTTPServer, route_name: str, count: Callable[[Request], int]) -> list[int]:
    """Wrap a route's handler so every request it serves (2xx) adds ``count(request)`` to a list."""
    seen: list[int] = []
    for index, route in enumerate(server.routes):
        if route.name != route_name:
            continue
        handler = route.handler

        def counted(request: Request, handler: Callable[[Request], Response] = handler) -> Response:
            response = handler(request)
            if 200 <= response.status < 300:
                seen.append(count(request))
            return response

        server.routes[index] = replace(route, handler=counted)
    return seen


# -- Dotdigital export contacts ---------------------------------------------------------------------


def dotdigital(stands: Stands) -> Target:
    from lytics_provider.operators import dotdigital as operators
    from lytics_sandbox.dotdigital import connection_json

    dd = stands.dotdigital
    for value in vars(operators).values():  # bulk-import status polls without the 15 s wait
        if isinstance(value, type) and "sleep" in vars(value):
            stands.monkeypatch.setattr(value, "sleep", staticmethod(lambda seconds: None))
    secret = f"dd-{stands.name}-pw"
    dd._password = secret
    stands.monkeypatch.setenv("AIRFLOW_CONN_DOTDIGITAL_CONFORMANCE", connection_json(dd))
    book_name = f"Lytics {stands.name}"
    imports_before = set(dd.imports)
    removed: list[int] = []
    for index, route in enumerate(dd.routes):
        if route.name.endswith("/contacts/delete"):
            handler = route.handler

            def counted(request: Request, handler: Any = handler) -> Response:
                response = handler(request)
                if 200 <= response.status < 300:
                    removed.append(len(json.loads(request.body or b"[]")))
                return response

            dd.routes[index] = replace(route, handler=counted)

    def book() -> Any:
        return dd.book_by_name(book_name)

    def held() -> set[str]:
        found = book()
        return {e for e, status in dd.members(found.id).items() if status == "Subscribed"} if found else set()

    def received() -> int:
        return sum(job.rows for key, job in dd.imports.items() if key not in imports_before) + sum(removed)

    def state() -> dict[str, bytes]:
        found = book()
        return {"members": json.dumps(dd.members(found.id) if found else {}, sort_keys=True).encode()}

    def break_credentials() -> None:
        dd._password = f"{secret}-rotated"

    @contextmanager
    def interrupt() -> Iterator[None]:
        dd.faults.add("5xx", status=503, path_regex=r"/v2/contacts/import/[^/]+$", method="GET", times=None)
        try:
            yield
        finally:
            dd.faults.clear()

    config = {
        "type": "dotdigital_export_contacts",
        "audience": AUDIENCE,
        "dotdigital_conn_id": "dotdigital_conformance",
        "address_book_name": book_name,
        "create_address_book": True,
        "on_exit": "remove",
    }
    return Target(config, secret, held, received, state, break_credentials, interrupt)


# -- iContact export --------------------------------------------------------------------------------


def icontact(stands: Stands) -> Target:
    ic = stands.icontact
    secret = f"ic-{stands.name}-pw"
    app_id, username, _ = ic.credentials
    ic.credentials = (app_id, username, secret)
    stands.monkeypatch.setenv("AIRFLOW_CONN_ICONTACT_CONFORMANCE", json.dumps(ic.connection()))
    listing = ic.data.add_list(stands.name)
    list_id = str(listing["listId"])
    posted = count_bodies(ic, "subscriptions_post", lambda request: len(ic._items(request, "subscription")))

    def held() -> set[str]:
        return {ic.data.contacts[cid]["email"] for cid in ic.data.subscribers(list_id)}

    def state() -> dict[str, bytes]:
        return {"subscribers": json.dumps(sorted(held())).encode()}

    def break_credentials() -> None:
        ic.credentials = (app_id, username, f"{secret}-rotated")

    @contextmanager
    def interrupt() -> Iterator[None]:
        ic.faults.add("5xx", status=503, path_regex=r"/subscriptions", method="POST", after=1, times=None)
        try:
            yield
        finally:
            ic.faults.clear()

    config = {
        "type": "icontact_export",
        "audience": AUDIENCE,
        "icontact_conn_id": "icontact_conformance",
        "destination_list": list_id,
        "batch_size": 50,
    }
    return Target(config, secret, held, lambda: sum(posted), state, break_credentials, interrupt)


# -- file drops on SFTP (Mapp, File Service) ---------------------------------------------------------


def _sftp_target(stands: Stands, config: dict[str, Any], read_keys: Callable[[bytes], list[str]]) -> Target:
    from lytics_sandbox import sftp as sftp_module

    server = stands.sftp
    secret = f"sftp-{stands.name}-pw"
    server.password = secret
    folder = server.root / stands.name
    folder.mkdir()
    conn = {
        "conn_type": "sftp",
        "host": server.host,
        "port": server.port,
        "login": server.username,
        "password": secret,
        "extra": {"no_host_key_check": True},
    }
    stands.monkeypatch.setenv("AIRFLOW_CONN_SFTP_CONFORMANCE", json.dumps(conn))

    def files() -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}

    def newest() -> list[str]:
        found = sorted(folder.glob("[!.]*"), key=lambda p: p.stat().st_mtime_ns)
        return read_keys(found[-1].read_bytes()) if found else []

    def received() -> int:
        return sum(len(read_keys(body)) for name, body in files().items() if not name.startswith("."))

    def break_credentials() -> None:
        server.password = f"{secret}-rotated"

    @contextmanager
    def interrupt() -> Iterator[None]:
        original = sftp_module._SandboxSFTP.write
        writes = {"n": 0}

        def failing_write(self: Any, file_obj: Any, offset: int, data: bytes) -> Any:
            writes["n"] += 1
            if writes["n"] >= 1:
                raise OSError("connection lost mid-upload")
            return original(self, file_obj, offset, data)

        stands.monkeypatch.setattr(sftp_module._SandboxSFTP, "write", failing_write, raising=False)
        try:
            yield
        finally:
            stands.monkeypatch.setattr(sftp_module._SandboxSFTP, "write", original, raising=False)

    config = {**config, "sftp_conn_id": "sftp_conformance", "folder": f"/{stands.name}"}
    return Target(config, secret, lambda: set(newest()), received, files, break_credentials, interrupt)


def _csv_column(body: bytes, column: int | str) -> list[str]:
    text = body.decode("utf-8")
    if isinstance(column, int):
        return [row[column] for row in list(csv.reader(io.StringIO(text, newline="")))[1:]]
    return [row[column] for row in csv.DictReader(io.StringIO(text, newline=""))]


def mapp(stands: Stands) -> Target:
    config = {
        "type": "mapp_sftp_export",
        "audience": AUDIENCE,
        "identifier_field": "email",
        "field_mapping": {"email": "user.Email", "first_name": "user.FirstName"},
    }
    return _sftp_target(stands, config, lambda body: _csv_column(body, 0))


def file_service(stands: Stands) -> Target:
    config = {
        "type": "file_service_export",
        "audience": AUDIENCE,
        "fields": ["_uid", "email", "first_name"],
        "compression": "gz",
    }
    return _sftp_target(stands, config, lambda body: _csv_column(gzip.decompress(body), "_uid"))


# -- object stores ------------------------------------------------------------------------------------


def s3(stands: Stands) -> Target:
    import boto3
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
    config = {
        "type": "s3_export",
        "audience": AUDIENCE,
        "aws_conn_id": "aws_conformance",
        "bucket": bucket,
        "fields": ["_uid", "email", "first_name"],
        "compression": "gz",
    }

    def objects() -> dict[str, bytes]:
        listing = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing}

    def keys(body: bytes) -> list[str]:
        return _csv_column(gzip.decompress(body), "_uid")

    def held() -> set[str]:
        found = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        if not found:
            return set()
        newest = max(found, key=lambda o: (o["LastModified"], o["Key"]))["Key"]
        return set(keys(client.get_object(Bucket=bucket, Key=newest)["Body"].read()))

    def break_credentials() -> None:
        config["bucket"] = f"{bucket}-missing"

    @contextmanager
    def interrupt() -> Iterator[None]:
        yield

    return Target(
        config,
        secret,
        held,
        lambda: sum(len(keys(b)) for b in objects().values()),
        objects,
        break_credentials,
        interrupt,
    )


def gcs(stands: Stands) -> Target:
    from airflow.providers.google.common.hooks.base_google import GoogleBaseHook
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    stands.monkeypatch.setenv("STORAGE_EMULATOR_HOST", stands.gcs)
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
    config = {
        "type": "gcs_export",
        "audience": AUDIENCE,
        "gcp_conn_id": "gcp_conformance",
        "bucket": bucket,
        "fields": ["_uid", "email", "first_name"],
        "compression": "gz",
    }

    def blobs() -> list[Any]:
        return sorted(client.list_blobs(bucket), key=lambda b: (b.updated, b.name))

    def objects() -> dict[str, bytes]:
        return {b.name: b.download_as_bytes(raw_download=True) for b in blobs()}

    def keys(body: bytes) -> list[str]:
        return _csv_column(gzip.decompress(body), "_uid")

    def held() -> set[str]:
        found = blobs()
        return set(keys(found[-1].download_as_bytes(raw_download=True))) if found else set()

    def break_credentials() -> None:
        config["bucket"] = f"{bucket}-missing"

    @contextmanager
    def interrupt() -> Iterator[None]:
        yield

    return Target(
        config,
        secret,
        held,
        lambda: sum(len(keys(b)) for b in objects().values()),
        objects,
        break_credentials,
        interrupt,
    )


def snowflake(stands: Stands) -> Target:
    import fakesnow
    import snowflake.connector

    secret = f"sf-{stands.name}-pw"
    conn = {
        "conn_type": "snowflake",
        "login": "lytics",
        "password": secret,
        "schema": "EXPORTS",
        "extra": {"account": "xy12345", "database": "LYTICS", "warehouse": "WH", "role": "R"},
    }
    stands.monkeypatch.setenv("AIRFLOW_CONN_SNOWFLAKE_CONFORMANCE", json.dumps(conn))
    stands.cleanup.enter_context(fakesnow.patch())
    db = snowflake.connector.connect(database="LYTICS", schema="EXPORTS")
    stands.cleanup.callback(db.close)
    db.cursor().execute("CREATE DATABASE IF NOT EXISTS LYTICS")
    db.cursor().execute("CREATE SCHEMA IF NOT EXISTS LYTICS.EXPORTS")
    config = {
        "type": "snowflake_export",
        "audience": AUDIENCE,
        "snowflake_conn_id": "snowflake_conformance",
        "fields": ["_uid", "email", "first_name"],
        "swap_method": "rename",
    }

    def tables() -> list[str]:
        cur = db.cursor()
        cur.execute("SELECT table_name FROM LYTICS.INFORMATION_SCHEMA.TABLES WHERE table_schema = 'EXPORTS'")
        return sorted(r[0] for r in cur.fetchall())

    def rows(table: str) -> list[tuple[Any, ...]]:
        cur = db.cursor()
        cur.execute(f"SELECT * FROM LYTICS.EXPORTS.{table} ORDER BY 1")
        return cur.fetchall()

    def held() -> set[str]:
        return {row[0] for row in rows("USERS_CONFORMANCE")} if "USERS_CONFORMANCE" in tables() else set()

    def state() -> dict[str, bytes]:
        return {t: json.dumps(rows(t), default=str).encode() for t in tables()}

    def break_credentials() -> None:
        config["database"] = "NO_SUCH_DATABASE"

    @contextmanager
    def interrupt() -> Iterator[None]:
        yield

    return Target(
        config,
        secret,
        held,
        lambda: sum(len(rows(t)) for t in tables()),
        state,
        break_credentials,
        interrupt,
    )


def redshift(stands: Stands) -> Target:
    """Redshift on its stand-in: S3 staging on moto, the table SQL on the local PostgreSQL (COPY from
    stdin, as PostgreSQL cannot read ``s3://``); skipped when no PostgreSQL accepts connections."""
    import pytest

    from tests.integration.conftest_warehouse import PG_DSN, pg_connect

    psycopg2 = pytest.importorskip("psycopg2")
    try:
        admin = psycopg2.connect(PG_DSN, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_DSN!r}: {exc}".strip())
    admin.autocommit = True
    schema = f"conf_{stands.name}"
    with admin.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {schema}")

    def drop() -> None:
        with admin.cursor() as cur:
            cur.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()

    stands.cleanup.callback(drop)
    staging = s3(stands)
    params = dict(item.split("=", 1) for item in PG_DSN.split())
    secret = f"rs-{stands.name}-pw"
    conn = {
        "conn_type": "postgres",
        "host": params.get("host", "127.0.0.1"),
        "port": int(params.get("port", 5432)),
        "login": params.get("user", "postgres"),
        "password": secret,
        "schema": params.get("dbname", "test"),
        "extra": {"options": f"-c search_path={schema}"},
    }
    stands.monkeypatch.setenv("AIRFLOW_CONN_REDSHIFT_CONFORMANCE", json.dumps(conn))
    config = {
        "type": "redshift_export",
        "audience": AUDIENCE,
        "redshift_conn_id": "redshift_conformance",
        "aws_conn_id": "aws_conformance",
        "s3_bucket": staging.config["bucket"],
        "schema_name": schema,
        "copy_method": "stdin",
        "fields": ["_uid", "email", "first_name"],
    }

    def tables() -> list[str]:
        with pg_connect(schema) as db, db.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (schema,))
            return [r[0] for r in cur.fetchall()]

    def rows(table: str) -> list[tuple[Any, ...]]:
        with pg_connect(schema) as db, db.cursor() as cur:
            cur.execute(f'SELECT * FROM "{schema}"."{table}" ORDER BY 1')
            return cur.fetchall()

    def held() -> set[str]:
        found = tables()
        return {row[0] for table in found for row in rows(table)} if found else set()

    def state() -> dict[str, bytes]:
        return {t: json.dumps(rows(t), default=str).encode() for t in tables()}

    def break_credentials() -> None:
        config["schema_name"] = f"{schema}_missing"

    @contextmanager
    def interrupt() -> Iterator[None]:
        yield

    return Target(
        config,
        secret,
        held,
        lambda: sum(len(rows(t)) for t in tables()),
        state,
        break_credentials,
        interrupt,
    )


def bigquery(stands: Stands) -> Target:
    """BigQuery: files staged on the GCS emulator, the load jobs on ``FakeBigQuery`` (no emulator
    installs from PyPI), which loads what the job stages, as WRITE_TRUNCATE."""
    from tests.integration.test_gcs_bigquery import FakeBigQuery

    staging = gcs(stands)
    fake = FakeBigQuery()
    fake.install(stands.monkeypatch)
    config = {
        "type": "bigquery_export",
        "audience": AUDIENCE,
        "gcp_conn_id": "gcp_conformance",
        "project": "test-project",
        "dataset": "lytics",
        "gcs_bucket": staging.config["bucket"],
        "fields": ["_uid", "email", "first_name"],
        "export_non_scalar_fields": False,
    }
    users = "lytics.users_conformance"

    def held() -> set[str]:
        return {row["_uid"] for row in fake.tables.get(users, [])}

    def state() -> dict[str, bytes]:
        return {name: json.dumps(rows, sort_keys=True).encode() for name, rows in fake.tables.items()}

    def break_credentials() -> None:
        config["gcs_bucket"] = f"{staging.config['bucket']}-missing"

    return Target(
        config,
        staging.secret,
        held,
        lambda: sum(len(rows) for rows in fake.tables.values()),
        state,
        break_credentials,
        staging.interrupt,
    )


def uid(member: dict[str, Any]) -> str | None:
    return member["_uid"]


DESTINATIONS: list[Destination] = [
    Destination("dotdigital_export_contacts", "dotdigital_export_contacts", "churn", dotdigital, valid_email,
                removes_exits=True, stand="dotdigital"),
    Destination("icontact_export", "icontact_export", "churn", icontact, valid_email, stand="icontact"),
    Destination("mapp_sftp_export", "mapp_sftp_export", "replace", mapp, valid_email, stand="sftp"),
    Destination("file_service_export", "file_service_export", "replace", file_service, uid, rejects=False,
                stand="sftp"),
    Destination("s3_export", "s3_export", "replace", s3, uid, rejects=False, stand="moto",
                interruptible=False),
    Destination("gcs_export", "gcs_export", "replace", gcs, uid, rejects=False, stand="gcs",
                interruptible=False),
    Destination("snowflake_export", "snowflake_export", "replace", snowflake, uid, rejects=False,
                stand="lytics", interruptible=False),
    Destination("redshift_export", "redshift_export", "replace", redshift, uid, rejects=False,
                stand="moto", interruptible=False),
    Destination("bigquery_export", "bigquery_export", "replace", bigquery, uid, rejects=False,
                stand="gcs", interruptible=False),
]  # fmt: skip
