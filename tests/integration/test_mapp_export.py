"""Mapp SFTP Export end to end: sandbox audience → scan → CSV on a real SFTP server on loopback."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from lytics_provider.operators.lytics import LyticsAudienceScanOperator, LyticsCommitRunOperator
from lytics_provider.pipeline import sftp_upload
from lytics_provider.pipeline.snapshot import Snapshot
from lytics_provider.pipeline.writers import format_csv_value
from lytics_provider.transfers.lytics_to_sftp import MappSftpExportOperator, mapp_scan_fields
from lytics_sandbox.lytics import LyticsSandbox
from lytics_sandbox.synth import SyntheticAccount
from tests.helpers import make_context, run_task

MAPPING = {"email": "user.Email", "first_name": "user.FirstName", "city": "user.City"}
FILE_NAME = "export-lytics-High_Value-20261123000000.csv"


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, lytics_sandbox: LyticsSandbox, sftp_server: Any
) -> Any:
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIRFLOW_CONN_MAPP_SFTP", sftp_server.conn_json)
    connect_lytics(monkeypatch, lytics_sandbox)
    (sftp_server.root / "upload").mkdir()
    return sftp_server


def connect_lytics(monkeypatch: pytest.MonkeyPatch, sandbox: LyticsSandbox) -> None:
    conn = {"conn_type": "lytics", "host": sandbox.base_url, "password": "sandbox-token"}
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", json.dumps(conn))


def scan_and_deliver(
    context: dict[str, Any], pre_render: bool = True, **deliver_kwargs: Any
) -> dict[str, Any]:
    """Scan then deliver; with ``pre_render`` the scan renders the rows, as generated DAGs do."""
    deliver = MappSftpExportOperator(
        task_id="deliver",
        job_id="mapp",
        sftp_conn_id="mapp_sftp",
        folder="/upload",
        field_mapping=MAPPING,
        **deliver_kwargs,
    )
    scan = LyticsAudienceScanOperator(
        task_id="scan",
        audience="high_value",
        job_id="mapp",
        fields=mapp_scan_fields(MAPPING, "email"),
        row_renderer=deliver.row_renderer() if pre_render else None,
    )
    run_task(scan, context)
    return run_task(deliver, context)


def read_csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def test_file_holds_exactly_the_audience_with_mapp_headers(env: Any, lytics_sandbox: LyticsSandbox) -> None:
    context = make_context()
    report = scan_and_deliver(context)

    assert sorted(p.name for p in (env.root / "upload").iterdir()) == [FILE_NAME]
    rows = read_csv(env.root / "upload" / FILE_NAME)
    assert rows[0] == ["user.Email", "user.FirstName", "user.City", "user.CustomAttribute.SegmentMembership"]
    expected = [
        [m["email"], m["first_name"], m["city"], format_csv_value(m["segments"])]
        for m in lytics_sandbox.expected_members("high_value", ["email", "first_name", "city", "segments"])
    ]
    assert sorted(rows[1:]) == sorted(expected)
    assert len(expected) == lytics_sandbox.audience("high_value").size
    assert all("high_value" in row[3].split(",") for row in rows[1:])
    assert report["rows"] == len(expected) and report["rejected"] == 0
    assert report["remote_path"] == f"/upload/{FILE_NAME}"
    assert report["bytes"] == (env.root / "upload" / FILE_NAME).stat().st_size

    final = run_task(LyticsCommitRunOperator(task_id="report", job_id="mapp"), context)
    assert final["delivery"]["rows"] == len(expected) and final["enters"] == len(expected)


def test_membership_column_can_be_turned_off(env: Any) -> None:
    scan_and_deliver(make_context(), include_membership=False)
    header = read_csv(env.root / "upload" / FILE_NAME)[0]
    assert header == ["user.Email", "user.FirstName", "user.City"]


def test_failure_between_upload_and_rename_leaves_no_final_file_and_a_retry_completes(
    env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    context = make_context()
    real_finalize = sftp_upload._finalize

    def crash(*args: Any) -> None:
        raise ConnectionResetError("connection dropped before the rename")

    monkeypatch.setattr(sftp_upload, "_finalize", crash)
    with pytest.raises(ConnectionResetError):
        scan_and_deliver(context)
    upload = env.root / "upload"
    assert not (upload / FILE_NAME).exists()
    assert [p.name for p in upload.iterdir()] == [f".{FILE_NAME}.part"]

    monkeypatch.setattr(sftp_upload, "_finalize", real_finalize)
    report = scan_and_deliver(context)
    assert sorted(p.name for p in upload.iterdir()) == [FILE_NAME]
    assert len(read_csv(upload / FILE_NAME)) == report["rows"] + 1


def test_a_retry_of_the_same_run_overwrites_the_same_file(env: Any) -> None:
    context = make_context()
    first = scan_and_deliver(context)
    body = (env.root / "upload" / FILE_NAME).read_bytes()
    second = scan_and_deliver(context)
    assert first["remote_path"] == second["remote_path"]
    assert sorted(p.name for p in (env.root / "upload").iterdir()) == [FILE_NAME]
    assert (env.root / "upload" / FILE_NAME).read_bytes() == body


def test_dry_run_uploads_nothing(env: Any) -> None:
    report = scan_and_deliver(make_context(params={"dry_run": True}))
    assert report["dry_run"] is True and report["rows"] == 500
    assert list((env.root / "upload").iterdir()) == []
    assert Path(report["staged_file"]).exists()


@pytest.mark.parametrize("pre_render", [True, False], ids=["rendered-by-scan", "rendered-by-deliver"])
def test_members_with_invalid_email_go_to_the_rejects_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sftp_server: Any, pre_render: bool
) -> None:
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIRFLOW_CONN_MAPP_SFTP", sftp_server.conn_json)
    (sftp_server.root / "upload").mkdir()
    with LyticsSandbox(SyntheticAccount(invalid_email_rate=0.1)) as sandbox:
        connect_lytics(monkeypatch, sandbox)
        report = scan_and_deliver(make_context(), pre_render=pre_render)
        members = list(sandbox.expected_members("high_value", ["email"]))
    bad = {m["_uid"] for m in members if m["email"].startswith("not-an-email-")}
    assert bad and report["rejected"] == len(bad)
    rejects = [json.loads(line) for line in Path(report["rejects_file"]).read_text().splitlines()]
    assert {r["id"] for r in rejects} == bad
    assert {r["reason"] for r in rejects} == {"invalid email address in 'email'"}
    positions = {m["_uid"]: number for number, m in enumerate(members, 1)}
    assert [r["row_number"] for r in rejects] == [positions[r["id"]] for r in rejects]
    rows = read_csv(sftp_server.root / "upload" / FILE_NAME)
    assert len(rows) - 1 == report["rows"] == len(members) - len(bad)


def test_rows_rendered_by_the_scan_make_the_same_file_as_rendering_at_delivery(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sftp_server: Any
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MAPP_SFTP", sftp_server.conn_json)
    (sftp_server.root / "upload").mkdir()
    files = {}
    rendered_at_delivery: list[bool] = []
    real_render = MappSftpExportOperator._render_snapshot

    def spy(snapshot: Snapshot, renderer: Any) -> Any:
        rendered_at_delivery.append(pre_render)
        return real_render(snapshot, renderer)

    monkeypatch.setattr(MappSftpExportOperator, "_render_snapshot", staticmethod(spy))
    with LyticsSandbox(SyntheticAccount(invalid_email_rate=0.05)) as sandbox:
        connect_lytics(monkeypatch, sandbox)
        for pre_render in (True, False):
            monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / f"data-{pre_render}"))
            report = scan_and_deliver(make_context(), pre_render=pre_render)
            files[pre_render] = (
                (sftp_server.root / "upload" / FILE_NAME).read_bytes(),
                Path(report["rejects_file"]).read_text(),
            )
    assert rendered_at_delivery == [False]
    assert files[True] == files[False]
    assert files[True][1]


def test_members_without_the_identifier_are_rejected_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sftp_server: Any
) -> None:
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIRFLOW_CONN_MAPP_SFTP", sftp_server.conn_json)
    snapshot_path = tmp_path / "snap.db"
    members = [
        {"_uid": "u1", "user_id": "A-1", "email": "a@example.com", "segments": ["vip"]},
        {"_uid": "u2", "email": "b@example.com"},
        {"_uid": "u3", "user_id": "", "email": "c@example.com"},
    ]
    with Snapshot(snapshot_path) as snap:
        snap.add_page(members, "")
    scan = {
        "snapshot": str(snapshot_path),
        "members": 3,
        "audience": {"id": "x", "name": "VIP Club", "slug": "vip"},
    }
    deliver = MappSftpExportOperator(
        task_id="deliver",
        job_id="mapp_uid",
        sftp_conn_id="mapp_sftp",
        field_mapping={"user_id": "user.CustomerId", "email": "user.Email"},
        identifier_field="user_id",
    )
    report = deliver.execute(make_context(xcoms={"scan": scan}))
    assert (report["rows"], report["rejected"]) == (1, 2)
    rejects = [json.loads(line) for line in Path(report["rejects_file"]).read_text().splitlines()]
    assert [(r["id"], r["row_number"], r["reason"]) for r in rejects] == [
        ("u2", 2, "missing identifier: no 'user_id' value"),
        ("u3", 3, "missing identifier: no 'user_id' value"),
    ]
    rows = read_csv(sftp_server.root / "export-lytics-VIP_Club-20261123000000.csv")
    assert rows == [
        ["user.CustomerId", "user.Email", "user.CustomAttribute.SegmentMembership"],
        ["A-1", "a@example.com", "vip"],
    ]


def test_a_missing_folder_is_a_clear_error(env: Any) -> None:
    with pytest.raises(FileNotFoundError, match="'/nope' does not exist"):
        _deliver_to(make_context(), "/nope")


def _deliver_to(context: dict[str, Any], folder: str) -> None:
    scan = LyticsAudienceScanOperator(task_id="scan", audience="high_value", job_id="mapp", fields=["email"])
    run_task(scan, context)
    MappSftpExportOperator(
        task_id="deliver", job_id="mapp", sftp_conn_id="mapp_sftp", folder=folder, field_mapping=MAPPING
    ).execute(context)


# -- job config --------------------------------------------------------------------------------

INCLUDE = Path(__file__).resolve().parents[2] / "include"


def test_example_job_builds_scan_deliver_report_daily_with_keep_updated_on() -> None:
    from lytics_provider.jobs.context import JobContext
    from lytics_provider.jobs.loader import load_job_file
    from lytics_provider.jobs.types.files import MappSftpExportJob

    config = load_job_file(INCLUDE / "jobs" / "mapp_high_value_daily.yaml")
    assert isinstance(config, MappSftpExportJob) and config.keep_updated is True
    from airflow.sdk import DAG

    with DAG("mapp_example", schedule=None) as dag:
        config.add_tasks(JobContext(dag, "mapp_example", INCLUDE / "jobs" / "mapp_high_value_daily.yaml"))
    assert dag.task_dict["scan"].downstream_task_ids == {"deliver"}
    assert dag.task_dict["deliver"].downstream_task_ids == {"report"}
    assert set(dag.task_dict["scan"].fields) >= {"email", "first_name", "segments"}

    minimal = MappSftpExportJob.model_validate(
        {
            "type": "mapp_sftp_export",
            "audience": "a",
            "sftp_conn_id": "s",
            "field_mapping": {"email": "user.Email"},
        }
    )
    assert (minimal.keep_updated, minimal.frequency, minimal.timezone) == (True, "daily", "UTC")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"field_mapping": {"first_name": "user.FirstName"}},
            "identifier_field 'email' is not in field_mapping",
        ),
        ({"field_mapping": {"email": "user.Email", "x": "user.Email"}}, "appear twice"),
        ({"frequency": "hourly"}, "runs daily"),
        ({"fields": ["email"]}, "remove `fields`"),
    ],
)
def test_bad_mapp_configs_say_what_to_fix(change: dict[str, Any], message: str) -> None:
    from pydantic import ValidationError

    from lytics_provider.jobs.types.files import MappSftpExportJob

    config = {
        "type": "mapp_sftp_export",
        "audience": "a",
        "sftp_conn_id": "s",
        "field_mapping": MAPPING,
        **change,
    }
    with pytest.raises(ValidationError, match=message):
        MappSftpExportJob.model_validate(config)


def test_upload_falls_back_to_plain_rename_when_posix_rename_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sftp_server: Any
) -> None:
    from airflow.providers.sftp.hooks.sftp import SFTPHook
    from paramiko import SFTPClient

    def unsupported(self: SFTPClient, old: str, new: str) -> None:
        raise OSError("Operation unsupported")

    monkeypatch.setattr(SFTPClient, "posix_rename", unsupported)
    monkeypatch.setenv("AIRFLOW_CONN_MAPP_SFTP", sftp_server.conn_json)
    for version in (b"first\n", b"second version\n"):
        local = tmp_path / "drop.csv"
        local.write_bytes(version)
        result = sftp_upload.upload_file(SFTPHook(ssh_conn_id="mapp_sftp"), local, "", "drop.csv")
        assert (result.remote_path, result.bytes) == ("drop.csv", len(version))
        assert sorted(p.name for p in sftp_server.root.iterdir()) == ["drop.csv"]
        assert (sftp_server.root / "drop.csv").read_bytes() == version
