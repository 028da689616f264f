# ruff: noqa: F811 - pytest fixtures imported from their modules
"""BlueKai: the gz TSV offline file byte for byte, then the trigger file, written last."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import Any

import pytest

from lytics_provider.files.transports.sftp import SftpTransport
from lytics_provider.transfers.lytics_to_bluekai import BlueKaiExportOperator
from tests.helpers import run_task
from tests.integration.partner_drops import CONN_ID, Drop, drop, partner_sftp_server, rejects_of, scan_of  # noqa: F401

MEMBERS = [
    {
        "_uid": "u1",
        "email": "a@example.com",
        "first_name": "Ann",
        "interests": ["golf", "wine"],
        "segments": ["high_value", "newsletter"],
    },
    {"_uid": "u2", "email": "b@example.com", "city": "Oslo", "segments": ["high_value"]},
    {"_uid": "u3", "email": "", "first_name": "Cy", "segments": ["high_value"]},
]
DATA = "Lytics_12345_2026-11-23.gz"
TSV = (
    b"a@example.com\tfirst_name=Ann|interests=golf&wine|high_value=1|newsletter=1\r\n"
    b"b@example.com\tcity=Oslo|high_value=1\r\n"
)


def deliver(drop: Drop, **options: Any) -> BlueKaiExportOperator:
    options = {"fields": ["first_name", "city", "interests"], **options}
    return BlueKaiExportOperator(
        task_id="deliver",
        job_id="bk",
        sftp_conn_id=CONN_ID,
        folder=drop.folder,
        partner_name="Lytics",
        site_id="12345",
        **options,
    )


def test_offline_file_is_gz_tsv_without_header_and_the_trigger_names_its_size_and_md5(
    drop: Drop, tmp_path: Path
) -> None:
    report = run_task(deliver(drop), scan_of(tmp_path, MEMBERS))

    assert drop.names() == [DATA, f"{DATA}.trigger"]
    data = drop.read(DATA)
    assert gzip.decompress(data) == TSV
    assert drop.read(f"{DATA}.trigger") == (
        f"{DATA}\n{len(data)}\n{hashlib.md5(data).hexdigest()}\n".encode()
    )
    assert report["trigger_file"] == f"{drop.folder}/{DATA}.trigger"
    assert (report["rows"], report["rejected"]) == (2, 1)
    assert rejects_of(report) == [("u3", "missing identifier: no 'email' value")]


def test_listed_audiences_name_and_every_audience_options(drop: Drop, tmp_path: Path) -> None:
    operator = deliver(
        drop,
        fields=None,
        audience_membership=["newsletter", "vip"],
        append_segment_name=True,
        additional_segments=True,
        custom_join="+",
    )
    run_task(operator, scan_of(tmp_path, MEMBERS[:2]))
    assert gzip.decompress(drop.read(DATA)) == (
        b"a@example.com\tnewsletter=1|segment_name=High Value|segments=high_value+newsletter\r\n"
        b"b@example.com\tsegment_name=High Value|segments=high_value\r\n"
    )


def test_the_trigger_is_uploaded_only_after_the_complete_data_file(
    drop: Drop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, list[str]]] = []
    real_upload = SftpTransport.upload

    def watching(self: SftpTransport, local: Path, name: str) -> Any:
        seen.append((name, drop.names()))
        return real_upload(self, local, name)

    monkeypatch.setattr(SftpTransport, "upload", watching)
    run_task(deliver(drop), scan_of(tmp_path, MEMBERS))
    assert seen == [(DATA, []), (f"{DATA}.trigger", [DATA])]
    assert gzip.decompress(drop.read(DATA)) == TSV


def test_a_failed_data_upload_leaves_no_trigger_and_the_retry_writes_both(
    drop: Drop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_upload = SftpTransport.upload

    def lost(self: SftpTransport, local: Path, name: str) -> Any:
        raise ConnectionResetError("connection lost mid-upload")

    context = scan_of(tmp_path, MEMBERS)
    monkeypatch.setattr(SftpTransport, "upload", lost)
    with pytest.raises(ConnectionResetError):
        run_task(deliver(drop), context)
    assert drop.names() == []
    monkeypatch.setattr(SftpTransport, "upload", real_upload)
    run_task(deliver(drop), context)
    assert drop.names() == [DATA, f"{DATA}.trigger"]
    data = drop.read(DATA)
    assert drop.read(f"{DATA}.trigger").split(b"\n")[2] == hashlib.md5(data).hexdigest().encode()


def test_example_config_and_one_file_a_day() -> None:
    from pydantic import ValidationError

    from lytics_provider.jobs.loader import load_job_file
    from lytics_provider.jobs.types.partner_drops import BlueKaiExportJob

    include = Path(__file__).resolve().parents[2] / "include" / "jobs"
    config = load_job_file(include / "bluekai_export.yaml")
    assert isinstance(config, BlueKaiExportJob) and config.scan_field_list() == [
        "email",
        "first_name",
        "city",
        "interests",
        "segments",
    ]
    base = {
        "type": "bluekai_export",
        "audience": "a",
        "sftp_conn_id": "s",
        "partner_name": "P",
        "site_id": "1",
    }
    with pytest.raises(ValidationError, match="named by date"):
        BlueKaiExportJob.model_validate({**base, "frequency": "hourly"})
    with pytest.raises(ValidationError, match="partner_name"):
        BlueKaiExportJob.model_validate({**base, "partner_name": "a/b"})
