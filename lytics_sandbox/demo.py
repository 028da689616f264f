"""Every stand-in the example jobs need, started once, and the ``AIRFLOW_CONN_*`` that point at them.

:class:`DemoStands` reads the job configs (``include/jobs``), starts the Lytics sandbox with every
audience they name, the SFTP server, moto (S3, SQS, Kinesis), the GCS and Pub/Sub emulators, the
vendor stand-ins of ``lytics_sandbox`` and, when ``npx`` is on PATH, Azurite; creates the buckets,
queues, streams, hubs and folders the jobs name; and builds one connection per connection id a job
uses, by the kind of its field (``sftp_conn_id`` -> the SFTP server, ``aws_conn_id`` -> moto, ...).
A stand-in that cannot start is listed in :attr:`DemoStands.skipped` with the reason, so the runs
that need it fail with their real error and the table says why.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lytics_sandbox.azurite import connection_string, start_azurite
from lytics_sandbox.google_keys import service_account_key

PROJECT = "lytics-demo"
AWS_REGION = "us-east-1"
SECRET = "demo-secret"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def conn_env_name(conn_id: str) -> str:
    """``AIRFLOW_CONN_<ID>``: the variable Airflow reads connection ``conn_id`` from."""
    return "AIRFLOW_CONN_" + conn_id.upper()


def _walk(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key), item
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


@dataclass
class JobNeeds:
    """What the job configs name: connection ids by kind, audiences, and resources to create."""

    conn_ids: dict[str, set[str]] = field(default_factory=dict)
    audiences: set[str] = field(default_factory=set)
    values: dict[str, set[str]] = field(default_factory=dict)

    def add(self, config: Mapping[str, Any]) -> None:
        """Record one config (its ``model_dump()``); a value is kept under its key and under
        ``<job type>:<key>``, a list of strings as its items."""
        job_type = str(config.get("type") or "")
        for key, value in _walk(dict(config)):
            if key.endswith("_conn_id") and isinstance(value, str) and value:
                self.conn_ids.setdefault(key.removesuffix("_conn_id"), set()).add(value)
            elif key in ("audience", "audiences", "audience_slug") and value:
                self.audiences.update([value] if isinstance(value, str) else _slugs(value))
            else:
                items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
                for item in items:
                    if isinstance(item, str) and item:
                        self.values.setdefault(key, set()).add(item)
                        self.values.setdefault(f"{job_type}:{key}", set()).add(item)

    def named(self, *keys: str) -> set[str]:
        """Every value the configs give under one of ``keys``."""
        return set().union(*(self.values.get(k, set()) for k in keys))


def _slugs(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [str(k) for k in value]
    return [v if isinstance(v, str) else str(v.get("audience") or v.get("slug") or "") for v in value]


def job_needs(jobs_dir: Path) -> JobNeeds:
    """Read every job config in ``jobs_dir`` (invalid ones are left out)."""
    from lytics_provider.jobs.loader import find_job_files, load_job_files

    needs = JobNeeds()
    jobs, _errors = load_job_files(find_job_files(jobs_dir))
    for job in jobs:
        needs.add(job.config.model_dump(mode="json"))
    return needs


@dataclass
class DemoStands:
    """The stand-ins of one demo; :meth:`start`, then :attr:`env`, then :meth:`stop`."""

    root: Path
    jobs_dir: Path
    audience_size: int = 300
    env: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    """Stand-in -> why it is not running."""
    urls: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    """Variables beside the connections (emulator hosts, the CA bundle)."""
    _servers: list[Any] = field(default_factory=list)
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _conns: dict[str, Callable[[], dict[str, Any]]] = field(default_factory=dict)
    _ca_files: list[Path] = field(default_factory=list)

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> DemoStands:
        """Start every stand-in (each on its own; one failing leaves the others running)."""
        self.root.mkdir(parents=True, exist_ok=True)
        needs = job_needs(self.jobs_dir)
        for name, starter in STARTERS:
            try:
                starter(self, needs)
            except Exception as exc:
                self.skipped[name] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        self._build_env(needs)
        return self

    def stop(self) -> None:
        for server in reversed(self._servers):
            with contextlib.suppress(Exception):
                server.stop()
        for proc in self._processes:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 15)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
        self._servers.clear()
        self._processes.clear()

    def keep(self, server: Any, kind: str, conn: Callable[[], dict[str, Any]] | None = None) -> Any:
        """Keep a started server to stop later; ``conn`` builds the connection of ``kind``."""
        self._servers.append(server)
        if conn is not None:
            self._conns[kind] = conn
        url = getattr(server, "base_url", None)
        if isinstance(url, str):
            self.urls[kind] = url
        ca_file = getattr(server, "ca_file", None)
        if ca_file:
            self._ca_files.append(Path(ca_file))
        return server

    def _build_env(self, needs: JobNeeds) -> None:
        env: dict[str, str] = {"LYTICS_DATA_DIR": str(self.root / "data")}
        for kind, conn_ids in sorted(needs.conn_ids.items()):
            build = self._conns.get(kind)
            if build is None:
                continue
            value = json.dumps(build())
            for conn_id in sorted(conn_ids):
                env[conn_env_name(conn_id)] = value
        if self._ca_files:
            bundle = self.root / "ca-bundle.pem"
            bundle.write_text("".join(Path(p).read_text() for p in self._ca_files))
            env["REQUESTS_CA_BUNDLE"] = str(bundle)
        env.update(self.extra_env)
        self.env = env

    def describe(self) -> dict[str, Any]:
        """The JSON line ``python -m lytics_sandbox --demo`` prints: env, skipped stand-ins, URLs."""
        return {"env": self.env, "skipped": self.skipped, "urls": self.urls}


# -- starters: one per stand-in ----------------------------------------------------------------------


def _lytics(stands: DemoStands, needs: JobNeeds) -> None:
    from lytics_sandbox.lytics import LyticsSandbox
    from lytics_sandbox.synth import SyntheticAccount

    audiences = {slug: stands.audience_size for slug in sorted(needs.audiences)}
    audiences["all_users"] = stands.audience_size * 2
    server = LyticsSandbox(SyntheticAccount(audiences=audiences))
    for stream in sorted(
        needs.named("stream", "data_streams_to_export")
    ):  # events for the stream exports to read
        server.add_stream_events(
            stream, [{"email": f"e{i}@example.com", "event": "view", "n": i} for i in range(50)]
        )
    server.start()
    url = server.base_url
    stands.keep(
        server,
        "lytics",
        lambda: {"conn_type": "lytics", "host": url, "password": "sandbox-token", "extra": {"bulk_url": url}},
    )


def _sftp(stands: DemoStands, needs: JobNeeds) -> None:
    from lytics_sandbox.sftp import SFTPSandbox

    root = stands.root / "sftp"
    for folder in needs.named("folder", "remote_folder", "path"):
        if folder.startswith("/"):
            (root / folder.lstrip("/")).mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    server = SFTPSandbox(root, host_key_path=stands.root / "sftp_host_key")
    host, port = server.start()
    conn = {
        "conn_type": "sftp",
        "host": host,
        "port": port,
        "login": server.username,
        "password": server.password,
        "extra": {"no_host_key_check": True},
    }
    stands.keep(server, "sftp", lambda: conn)


def _moto(stands: DemoStands, needs: JobNeeds) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    stands.urls["moto"] = endpoint
    conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": endpoint, "region_name": AWS_REGION},
    }
    stands.keep(server, "aws", lambda: conn)

    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name=AWS_REGION,
        )

    s3 = client("s3")
    for bucket in needs.named("bucket", "s3_bucket", "staging_bucket"):
        s3.create_bucket(Bucket=bucket)
    sqs = client("sqs")
    for queue in needs.named("sqs_queue"):
        attributes = {"FifoQueue": "true"} if queue.endswith(".fifo") else {}
        sqs.create_queue(QueueName=queue, Attributes=attributes)
    kinesis = client("kinesis")
    for stream in needs.named("stream_name"):
        kinesis.create_stream(StreamName=stream, ShardCount=1)
    stands.extra_env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")


def _google(stands: DemoStands, needs: JobNeeds) -> None:
    """The GCS emulator and the Pub/Sub stand-in, with one ``google_cloud_platform`` connection."""
    from gcp_storage_emulator.server import create_server

    from lytics_sandbox.httpserver import SandboxHTTPServer, json_response
    from lytics_sandbox.pubsub import PubSubSandbox

    port = free_port()
    gcs = create_server("127.0.0.1", port, in_memory=True)
    gcs.start()
    stands.keep(gcs, "gcs")
    stands.urls["gcs"] = f"http://127.0.0.1:{port}"
    pubsub = PubSubSandbox()
    address = pubsub.start()
    stands.keep(pubsub, "pubsub")
    from google.pubsub_v1 import types

    for topic in sorted(needs.named("pubsub_import_events:topic")):  # the topic its publishers write to
        pubsub._create_topic(types.Topic(name=f"projects/{PROJECT}/topics/{topic}"))
    stands.urls["pubsub"] = address
    tokens = SandboxHTTPServer()
    tokens.add_route(
        "POST",
        r"/token",
        lambda request: json_response({"access_token": "demo", "expires_in": 3600}),
        "token",
    )
    tokens.start()
    stands.keep(tokens, "google_oauth")
    key = service_account_key(PROJECT, f"{tokens.base_url}/token", "demo")
    conn = {
        "conn_type": "google_cloud_platform",
        "extra": {"project": PROJECT, "keyfile_dict": json.dumps(key)},
    }
    stands._conns["gcp"] = stands._conns["google_cloud"] = lambda: conn
    stands.extra_env.update(STORAGE_EMULATOR_HOST=stands.urls["gcs"], PUBSUB_EMULATOR_HOST=address)
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    os.environ["STORAGE_EMULATOR_HOST"] = stands.urls["gcs"]
    client = storage.Client(project=PROJECT, credentials=AnonymousCredentials())
    for bucket in needs.named("bucket", "gcs_bucket"):
        with contextlib.suppress(Exception):
            client.create_bucket(bucket)


def _http_stand_ins(stands: DemoStands, needs: JobNeeds) -> None:
    """The vendor stand-ins served over plain HTTP; each keeps its default credentials."""
    from lytics_sandbox import (
        braze,
        brevo,
        customerio,
        ga4,
        hubspot,
        icontact,
        iterable,
        klaviyo,
        mailchimp,
        marketo,
        segment,
        sendgrid,
        sfmc,
    )

    simple: list[tuple[str, Any]] = [
        ("brevo", brevo.BrevoSandbox()),
        ("customerio", customerio.CustomerIOSandbox()),
        ("hubspot", hubspot.HubspotSandbox()),
        ("klaviyo", klaviyo.KlaviyoSandbox(polls_to_complete=1)),
        ("mailchimp", mailchimp.MailchimpSandbox()),
        ("marketo", marketo.MarketoSandbox()),
        ("sendgrid", sendgrid.SendGridSandbox()),
        ("sfmc", sfmc.SfmcSandbox()),
        ("icontact", icontact.IContactSandbox()),
    ]
    for kind, server in simple:
        server.start()
        stands.keep(server, kind, server.connection)
    servers = dict(simple)
    seeds: list[tuple[Callable[[str], Any], tuple[str, ...]]] = [
        (servers["brevo"].data.add_list, ("list", "brevo_import:lists")),
        (servers["mailchimp"].add_audience, ("mailchimp_list",)),
        (servers["marketo"].data.add_list, ("static_list",)),
        (servers["sendgrid"].add_list, ("sendgrid_list", "import_lists")),
    ]
    for add, keys in seeds:  # the lists the example jobs name exist at the vendor, as in an account
        for name in sorted(needs.named(*keys)):
            add(name)
    sfmc_data = servers["sfmc"].data
    for key in sorted(needs.named("sfmc_export_data_extension:data_extension_key")):
        columns = {"SubscriberKey": "Text", "FirstName": "Text", "LastName": "Text", "EmailAddress": "Text"}
        sfmc_data.add_data_extension(key, columns, ["SubscriberKey"])
    sfmc_data.event_definitions.update(needs.named("event_definition_key"))
    for list_id in sorted(needs.named("sfmc_export_lists:list_id")):
        sfmc_data.add_list(list_id, f"Demo list {list_id}")
    keyed: list[tuple[str, Any]] = [
        ("braze", braze.BrazeSandbox()),
        ("iterable", iterable.IterableSandbox()),
        ("segment", segment.SegmentSandbox()),
        ("ga4", ga4.GA4Sandbox()),
    ]
    for kind, server in keyed:
        server.start()
        stands.keep(server, kind, lambda s=server: s.connection(SECRET))
    keyed[0][1].api_keys = {SECRET}
    keyed[1][1].api_keys = {SECRET}
    keyed[2][1].add_source(SECRET)
    for measurement_id in needs.named("measurement_id", "firebase_app_id"):
        keyed[3][1].add_stream(measurement_id, SECRET)


def _dotdigital(stands: DemoStands, needs: JobNeeds) -> None:
    from lytics_sandbox.dotdigital import DotdigitalSandbox, connection_json

    server = DotdigitalSandbox()
    server.start()
    for name in sorted(needs.named("address_book")):
        server.add_address_book(name)
    stands.keep(server, "dotdigital", lambda: json.loads(connection_json(server)))


def _tls_stand_ins(stands: DemoStands, needs: JobNeeds) -> None:
    """Salesforce, Zendesk, the Event Hubs and the webhook receiver, over HTTPS with local CAs."""
    from lytics_sandbox.azure_event_hub import AccessRule, EventHubSandbox
    from lytics_sandbox.salesforce import SalesforceSandbox, SObject
    from lytics_sandbox.tls import local_tls
    from lytics_sandbox.webhooks import WebhookReceiver, connection_json, make_tls
    from lytics_sandbox.zendesk import ZendeskSandbox

    tls_root = stands.root / "tls"
    salesforce = SalesforceSandbox(tls_root / "salesforce")
    for name in sorted(needs.named("membership_field")):  # the org's audience checkbox on its objects
        for sobject in salesforce.objects.values():
            sobject.fields.setdefault(name, "boolean")
    for name in sorted(needs.named("salesforce_custom_object_import:salesforce_object")):
        fields = {"Id": "id", "CreatedDate": "datetime", "SystemModstamp": "datetime"}
        fields.update({f: "string" for f in needs.named("salesforce_custom_object_import:fields")})
        salesforce.objects.setdefault(name, SObject(name, fields))
    salesforce.start()
    stands.keep(salesforce, "salesforce", salesforce.connection)

    tls = local_tls(tls_root / "zendesk")
    zendesk = ZendeskSandbox(incremental_per_minute=None)
    zendesk.ssl_context, zendesk.ca_file = tls.server_context, tls.ca_file
    zendesk.start()
    stands.keep(zendesk, "zendesk", lambda: zendesk.connection(SECRET))
    zendesk.token = SECRET

    hubs = EventHubSandbox(hubs=tuple(sorted(needs.named("event_hub"))), rules={"send": AccessRule(SECRET)})
    hubs.serve_tls(local_tls(tls_root / "event_hub"))
    hubs.start()
    stands.keep(
        hubs,
        "azure_event_hub",
        lambda: {"conn_type": "azure_event_hub", "password": hubs.connection_string("send")},
    )

    receiver = WebhookReceiver(make_tls(tls_root / "webhooks"))
    receiver.start()
    stands.keep(receiver, "webhooks", lambda: json.loads(connection_json(receiver)))
    stands._ca_files.append(Path(receiver.tls.ca_bundle))


def _databricks(stands: DemoStands, needs: JobNeeds) -> None:
    from lytics_sandbox.databricks import DatabricksSandbox

    server = DatabricksSandbox(s3_endpoint=stands.urls.get("moto"))
    server.start()
    server.token = SECRET
    for catalog in needs.named("catalog"):
        for schema in needs.named("database", "schema_name"):
            server.create_schema(catalog, schema)
    for source in needs.named("source"):
        parts = source.split(".")
        if len(parts) == 3:  # a table an import reads: rows of the last hour
            server.create_schema(parts[0], parts[1])
            server.query(
                f'CREATE TABLE IF NOT EXISTS "{parts[0]}"."{parts[1]}"."{parts[2]}" AS '
                "SELECT i AS order_id, 'buyer' || i || '@example.com' AS email, i * 1.5 AS amount, "
                "now() - INTERVAL 30 MINUTE AS modified_at FROM range(1, 51) t(i)"
            )
    stands.keep(server, "databricks", lambda: server.connection(SECRET))


def _alerts(stands: DemoStands, needs: JobNeeds) -> None:
    from lytics_sandbox.alert_webhooks import AlertWebhooksSandbox

    server = AlertWebhooksSandbox(slack_tokens=("T0/B0/demo",), teams_signatures=("demo",))
    server.start()
    url = server.base_url
    stands.keep(
        server,
        "slack_webhook",
        lambda: {"conn_type": "slackwebhook", "password": f"{url}/services/T0/B0/demo"},
    )
    stands._conns["microsoft_teams_webhook"] = lambda: {
        "conn_type": "http",
        "host": f"{url}/workflows/demo/triggers/manual/paths/invoke?sig=demo",
    }


def _pgp(stands: DemoStands, needs: JobNeeds) -> None:
    gpg = shutil.which("gpg")
    if not gpg:
        raise RuntimeError("gpg is not on PATH (the PGP connection needs a key pair)")
    home = stands.root / "gpg"
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    passphrase = "demo-passphrase"
    base = [gpg, "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--passphrase", passphrase]
    run = lambda *args: subprocess.run([*base, *args], check=True, capture_output=True, text=True).stdout  # noqa: E731
    run("--quick-gen-key", "Lytics Demo <demo@example.com>", "ed25519", "sign", "never")
    listing = subprocess.run(
        [gpg, "--homedir", str(home), "--with-colons", "--list-keys"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    fpr = listing.split("fpr:::::::::")[1].split(":")[0]
    run("--quick-add-key", fpr, "cv25519", "encr", "never")
    conn = {
        "conn_type": "lytics_pgp",
        "password": passphrase,
        "extra": {
            "public_key": run("--armor", "--export", fpr),
            "private_key": run("--armor", "--export-secret-keys", fpr),
        },
    }
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False, capture_output=True)
    stands._conns["pgp"] = lambda: conn


def _azurite(stands: DemoStands, needs: JobNeeds) -> None:
    npx = shutil.which("npx")
    if not npx:
        raise RuntimeError("npx is not on PATH (Azurite, the Azure Blob stand-in, runs on Node)")
    port = free_port()
    proc = start_azurite(npx, port, stands.root / "azurite.log")
    stands._processes.append(proc)
    conn_str = connection_string(port)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"npx azurite@3 exited ({proc.returncode}); see {stands.root / 'azurite.log'}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            break
        time.sleep(1)
    else:
        raise RuntimeError("Azurite did not listen within 180 s")
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(conn_str)
    for container in needs.named("container"):
        with contextlib.suppress(Exception):
            service.create_container(container)
    stands.urls["azurite"] = f"http://127.0.0.1:{port}"
    stands._conns["wasb"] = lambda: {"conn_type": "wasb", "extra": {"connection_string": conn_str}}


STARTERS: list[tuple[str, Callable[[DemoStands, JobNeeds], None]]] = [
    ("lytics", _lytics),
    ("sftp", _sftp),
    ("moto", _moto),
    ("google", _google),
    ("http", _http_stand_ins),
    ("dotdigital", _dotdigital),
    ("tls", _tls_stand_ins),
    ("databricks", _databricks),
    ("alerts", _alerts),
    ("pgp", _pgp),
    ("azurite", _azurite),
]
