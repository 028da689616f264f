# ruff: noqa: F811 - pytest fixtures imported from shared modules
"""The file-drop export engine: layouts, names, triggers, a partner preset, and every transport."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from pathlib import Path
from typing import Any

import pytest

from lytics_provider.files.export_layout import FileLayout, KeyValueCells
from lytics_provider.files.export_naming import COMPACT_STAMP, ISO_BASIC_STAMP, NameTemplate, run_stamp
from lytics_provider.files.export_operator import FileDropExportOperator
from lytics_provider.files.export_preset import FileDropPreset
from lytics_provider.files.export_trigger import TriggerFile
from lytics_provider.files.transports.azure_blob import AzureBlobTransport
from lytics_provider.files.transports.sftp import SftpTransport
from lytics_provider.pipeline.sftp_upload import UploadResult
from lytics_provider.pipeline.writers import JsonlWriter, format_csv_value
from tests.helpers import make_context, run_task
from tests.integration.azurite import Azurite, azurite  # noqa: F401 - session fixture
from tests.integration.conftest_warehouse import lytics_env, scanned_context  # noqa: F401 - fixtures

# A BlueKai-style drop, as a preset: `Partner_SiteID_YYYY-MM-DD.gz`, a TSV without a header whose
# rows are `id<TAB>f1=v|f2=v`, then `<name>.trigger` holding the name, size and MD5.
KEY_VALUE_FIELDS = ("city", "score_engagement", "segments")
BLUEKAI_STYLE = FileDropPreset(
    layout=FileLayout(
        ("email", "attributes"),
        delimiter="\t",
        header_row=False,
        cells=KeyValueCells("email", KEY_VALUE_FIELDS),
    ),
    name=NameTemplate("{partner}_{site_id}_{date}"),
    compression="gz",
    trigger=TriggerFile(".trigger"),
)


class RecordingTransport:
    """Wraps a transport; keeps the order of uploads and can fail the n-th one."""

    def __init__(self, inner: Any, fail_at: int | None = None) -> None:
        self.inner = inner
        self.fail_at = fail_at
        self.uploads: list[str] = []

    def describe(self, name: str) -> str:
        return self.inner.describe(name)

    def upload(self, local: Path, name: str) -> UploadResult:
        if self.fail_at is not None and len(self.uploads) == self.fail_at:
            self.fail_at = None
            raise ConnectionResetError("connection lost")
        self.uploads.append(name)
        return self.inner.upload(local, name)


# -- names and layouts --------------------------------------------------------------------------
def test_one_run_moment_spelled_by_each_preset() -> None:
    context = make_context()
    assert run_stamp(context, COMPACT_STAMP) == "20261123000000"
    assert run_stamp(context, ISO_BASIC_STAMP) == "20261123T000000Z"
    template = NameTemplate("{partner}-{name}-{date}-{timestamp}.{ext}", COMPACT_STAMP, safe_parts=True)
    moment = context["logical_date"]
    with pytest.raises(ValueError, match="uses 'partner'"):
        template.base_name({"slug": "x"}, moment, "csv")
    template = NameTemplate(template.template, COMPACT_STAMP, safe_parts=True, values={"partner": "Acme"})
    base, final = template.render({"name": "High Value (EU)"}, moment, "csv", "zip", True)
    assert (base, final) == (
        "Acme-High_Value_EU-2026-11-23-20261123000000.csv",
        "Acme-High_Value_EU-2026-11-23-20261123000000.zip.pgp",
    )


def test_layout_dialects_render_as_the_csv_module_does() -> None:
    records = [{"a": "x,y", "b": 1, "c": ["p", "q"]}, {"a": 'say "hi"', "b": None, "c": {"k": True}}]
    layout = FileLayout(("a", "b", "c"), header=("A", "B", "C"), delimiter=";", quoting="all")
    text = layout.header_text() + layout.renderer().render(records).text
    expected = io.StringIO()
    writer = csv.writer(expected, delimiter=";", quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(["A", "B", "C"])
    for record in records:
        writer.writerow([format_csv_value(record.get(name)) for name in ("a", "b", "c")])
    assert text == expected.getvalue()
    assert FileLayout(("a",), delimiter="\t").ext == "tsv"
    with pytest.raises(ValueError, match="2 names for 1 columns"):
        FileLayout(("a",), header=("A", "B"))
    with pytest.raises(ValueError, match="delimiter"):
        FileLayout(("a",), delimiter="ab")


def test_jsonl_layout_matches_the_jsonl_writer() -> None:
    records = [{"b": 2, "a": "é", "skip": 1}, {"a": None}]
    rendered = FileLayout(("a", "b"), file_format="jsonl").renderer().render(records).text
    buffer = io.BytesIO()
    with JsonlWriter(buffer) as writer:
        for record in records:
            writer.write({name: record[name] for name in ("a", "b") if name in record})
    assert rendered.encode() == buffer.getvalue()


def test_different_dialects_have_different_signatures() -> None:
    plain = FileLayout(("a", "b")).renderer().signature
    assert FileLayout(("a", "b"), delimiter="\t").renderer().signature != plain
    assert FileLayout(("a", "b")).renderer().signature == plain


# -- a partner preset over SFTP -----------------------------------------------------------------
@pytest.fixture
def sftp_env(lytics_env: Any, sftp_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AIRFLOW_CONN_PARTNER_SFTP", sftp_server.conn_json)
    (sftp_server.root / "incoming").mkdir()
    return sftp_server


def test_key_value_preset_writes_the_feed_then_its_trigger(sftp_env: Any, lytics_env: Any) -> None:
    context = scanned_context("high_value")
    transport = RecordingTransport(SftpTransport("partner_sftp", "incoming"))
    deliver = BLUEKAI_STYLE.operator(
        task_id="deliver", job_id="job", transport=transport, name_values={"partner": "Acme", "site_id": "42"}
    )
    report = run_task(deliver, context)

    data_name = "Acme_42_2026-11-23.gz"
    assert transport.uploads == [data_name, f"{data_name}.trigger"]  # the trigger goes last
    folder = sftp_env.root / "incoming"
    assert sorted(p.name for p in folder.iterdir()) == [data_name, f"{data_name}.trigger"]
    body = (folder / data_name).read_bytes()
    lines = gzip.decompress(body).decode().split("\r\n")
    assert lines[-1] == ""
    expected = list(lytics_env.expected_members("high_value"))
    assert len(lines) - 1 == report["rows"] == len(expected)
    first = expected[0]
    pairs = [f"{f}={format_csv_value(first[f])}" for f in KEY_VALUE_FIELDS if format_csv_value(first.get(f))]
    assert next(csv.reader([lines[0]], delimiter="\t")) == [first["email"], "|".join(pairs)]
    trigger = (folder / f"{data_name}.trigger").read_text()
    assert trigger == f"{data_name}\n{len(body)}\n{hashlib.md5(body).hexdigest()}\n"
    assert report["trigger_file"] == f"incoming/{data_name}.trigger"


def test_lost_trigger_upload_is_redone_whole_on_retry(sftp_env: Any, lytics_env: Any) -> None:
    context = scanned_context("high_value")
    transport = RecordingTransport(SftpTransport("partner_sftp", "incoming"), fail_at=1)
    deliver = BLUEKAI_STYLE.operator(
        task_id="deliver", job_id="job", transport=transport, name_values={"partner": "Acme", "site_id": "42"}
    )
    with pytest.raises(ConnectionResetError):
        run_task(deliver, context)
    folder = sftp_env.root / "incoming"
    assert [p.name for p in folder.iterdir()] == ["Acme_42_2026-11-23.gz"]  # no trigger without its data
    first = (folder / "Acme_42_2026-11-23.gz").read_bytes()
    run_task(deliver, context)
    assert transport.uploads == [
        "Acme_42_2026-11-23.gz",
        "Acme_42_2026-11-23.gz",
        "Acme_42_2026-11-23.gz.trigger",
    ]
    assert (folder / "Acme_42_2026-11-23.gz").read_bytes() == first  # the retry rebuilt the same bytes


def test_dry_run_stages_but_uploads_nothing(sftp_env: Any, lytics_env: Any) -> None:
    context = scanned_context("high_value", dry_run=True)
    transport = RecordingTransport(SftpTransport("partner_sftp", "incoming"))
    deliver = BLUEKAI_STYLE.operator(
        task_id="deliver", job_id="job", transport=transport, name_values={"partner": "Acme", "site_id": "42"}
    )
    report = run_task(deliver, context)
    assert report["dry_run"] is True and transport.uploads == []
    assert Path(report["staged_file"]).name == "Acme_42_2026-11-23.gz"
    assert list((sftp_env.root / "incoming").iterdir()) == []


# -- Azure Blob ---------------------------------------------------------------------------------
@pytest.fixture
def blob_container(azurite: Azurite, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Any:
    from azure.storage.blob import BlobServiceClient

    monkeypatch.setenv("AIRFLOW_CONN_PARTNER_BLOB", azurite.conn_json)
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    name = request.node.name.replace("_", "-")[:60].strip("-").lower()
    container = service.create_container(name)
    yield container
    container.delete_container()


def _blobs(container: Any) -> dict[str, bytes]:
    return {b.name: container.download_blob(b.name).readall() for b in container.list_blobs()}


def test_azure_blob_upload_commits_blocks_in_one_step(
    blob_container: Any, tmp_path: Path, monkeypatch
) -> None:
    from azure.storage.blob import BlobClient

    local = tmp_path / "drop.csv"
    local.write_bytes(b"".join(f"row {n}\r\n".encode() for n in range(20_000)))
    transport = AzureBlobTransport(
        blob_container.container_name, "out/daily", "partner_blob", block_bytes=64 * 1024
    )

    real_stage = BlobClient.stage_block
    staged: list[str] = []

    def dying_stage(self: Any, block_id: str, data: Any, **kwargs: Any) -> Any:
        if len(staged) == 2:
            raise ConnectionResetError("worker killed mid-upload")
        staged.append(block_id)
        return real_stage(self, block_id, data, **kwargs)

    monkeypatch.setattr(BlobClient, "stage_block", dying_stage)
    with pytest.raises(ConnectionResetError):
        transport.upload(local, "drop.csv")
    assert _blobs(blob_container) == {}  # staged blocks are not a blob until the commit
    monkeypatch.setattr(BlobClient, "stage_block", real_stage)

    result = transport.upload(local, "drop.csv")
    assert result.remote_path == f"wasb://{blob_container.container_name}/out/daily/drop.csv"
    assert _blobs(blob_container) == {"out/daily/drop.csv": local.read_bytes()}
    assert result.bytes == local.stat().st_size
    assert len(blob_container.get_blob_client("out/daily/drop.csv").get_block_list()[0]) > 2


def test_audience_drop_to_azure_blob(blob_container: Any, lytics_env: Any) -> None:
    context = scanned_context("high_value")
    deliver = FileDropExportOperator(
        task_id="deliver",
        job_id="job",
        fields=["_uid", "email"],
        preset=FileDropPreset(name=NameTemplate("lytics_{slug}_{timestamp}.{ext}"), compression="gz"),
        transport=AzureBlobTransport(blob_container.container_name, "", "partner_blob"),
    )
    report = run_task(deliver, context)
    name = "lytics_high_value_20261123T000000Z.csv.gz"
    blobs = _blobs(blob_container)
    assert list(blobs) == [name] and report["target"] == f"wasb://{blob_container.container_name}/{name}"
    rows = list(csv.DictReader(io.StringIO(gzip.decompress(blobs[name]).decode())))
    assert [r["_uid"] for r in rows] == [m["_uid"] for m in lytics_env.expected_members("high_value")]
    run_task(deliver, context)  # a retry replaces the blob with the same bytes
    assert _blobs(blob_container) == blobs


def test_missing_container_names_the_fix(azurite: Azurite, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PARTNER_BLOB", azurite.conn_json)
    local = tmp_path / "x.csv"
    local.write_text("a\r\n")
    with pytest.raises(FileNotFoundError, match="container 'nope' does not exist"):
        AzureBlobTransport("nope", "", "partner_blob").upload(local, "x.csv")


def test_template_rendering_keeps_every_option() -> None:
    import jinja2
    import pendulum
    from airflow.sdk import DAG

    from lytics_provider.transfers.lytics_to_s3 import LyticsToS3Operator
    from lytics_provider.transfers.lytics_to_sftp import MappSftpExportOperator

    with DAG("templating", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        mapp = MappSftpExportOperator(
            task_id="mapp",
            job_id="j",
            sftp_conn_id="s",
            folder="{{ params.f }}",
            field_mapping={"email": "E"},
        )
        s3 = LyticsToS3Operator(task_id="s3", job_id="j", bucket="{{ params.f }}", fields=["email"])
    for op in (mapp, s3):
        op.render_template_fields({"params": {"f": "drop"}}, jinja_env=jinja2.Environment())
    assert (mapp.folder, s3.bucket, s3.fields, s3.filename) == ("drop", "drop", ["email"], s3.filename)
    assert isinstance(s3.filename, str)
