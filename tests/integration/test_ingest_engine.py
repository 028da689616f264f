"""The ingest contract against the Lytics sandbox: checkpoint only after acknowledgement, resume once."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from lytics_provider.files.ingest import (
    FileCheckpoint,
    SqliteCheckpoint,
    StateCheckpoint,
    StreamWriter,
    ingest_file,
)
from lytics_provider.files.listing import ObjectInfo, SFTPStore
from lytics_provider.files.readers import ReadOptions
from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.pipeline.http import ServiceError
from lytics_provider.pipeline.rejects import RejectsWriter
from lytics_sandbox.lytics import LyticsSandbox
from tests.helpers import lytics_conn


@pytest.fixture
def hook(lytics_sandbox: LyticsSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> LyticsHook:
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics_sandbox.base_url, max_attempts=1))
    return LyticsHook()


def test_writer_reports_a_position_only_after_lytics_acknowledged_the_batch(
    hook: LyticsHook, lytics_sandbox: LyticsSandbox
) -> None:
    acked: list[Any] = []
    writer = StreamWriter(hook, "engine", max_batch_records=3, on_ack=acked.append)
    lytics_sandbox.faults.add("5xx", path_regex="/collect/json/engine", after=1, times=1)
    with pytest.raises(ServiceError):
        for n in range(1, 8):
            writer.add({"n": n}, position=n)
    assert acked == [3]  # the second batch (4-6) failed: its position was never reported
    assert [r["n"] for r in lytics_sandbox.collected("engine")] == [1, 2, 3]


def test_writer_bounds_batches_by_bytes_and_a_dry_run_sends_nothing(
    hook: LyticsHook, lytics_sandbox: LyticsSandbox
) -> None:
    record = {"blob": "x" * 90}
    size = len(json.dumps(record, separators=(",", ":")))
    with StreamWriter(hook, "sized", max_batch_bytes=2 + 3 * (size + 1)) as writer:
        writer.extend([record] * 7)
    assert [r["count"] for r in lytics_sandbox.collect_requests] == [3, 3, 1]
    assert writer.records == writer.accepted == 7
    with StreamWriter(hook, "dry", send=False, on_ack=pytest.fail) as dry:
        dry.add({"n": 1}, position=1)
    assert dry.records == 1 and lytics_sandbox.collected("dry") == []


@pytest.mark.parametrize("store", ["state", "file", "sqlite"])
def test_a_file_import_killed_mid_file_resumes_and_sends_every_record_once(
    hook: LyticsHook, lytics_sandbox: LyticsSandbox, tmp_path: Path, store: str
) -> None:
    source = tmp_path / "people.csv"
    source.write_text("email,n\n" + "".join(f"p{i}@x.io,{i}\n" for i in range(50)) + "bad,row,extra\n")
    stage = sqlite3.connect(tmp_path / "stage.db", isolation_level=None)
    stage.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    checkpoint = {
        "state": StateCheckpoint("engine_job", "in_progress"),
        "file": FileCheckpoint(tmp_path / "people.checkpoint.json"),
        "sqlite": SqliteCheckpoint(stage, "people"),
    }[store]

    def attempt() -> Any:
        writer = StreamWriter(hook, "people", max_batch_records=8, filename="people.csv")
        with RejectsWriter(tmp_path / "rejects.jsonl") as rejects:
            return ingest_file(
                source, "people.csv", writer, checkpoint, rejects, ReadOptions("csv"), keep_counts=True
            )

    lytics_sandbox.faults.add("5xx", path_regex="/collect/json/people", after=3, times=1)
    with pytest.raises(ServiceError):
        attempt()
    assert checkpoint.load() == {"key": "people.csv", "rows_done": 24, "accepted": 24, "lytics_rejected": 0}
    result = attempt()
    sent = [int(r["n"]) for r in lytics_sandbox.collected("people")]
    assert sent == list(range(50))
    assert (result.rows, result.sent, result.rejected, result.accepted) == (50, 26, 1, 50)
    assert all(r["query"]["filename"] == "people.csv" for r in lytics_sandbox.collect_requests)
    checkpoint.clear()
    assert checkpoint.load() is None


def test_sftp_store_lists_regular_files_under_a_prefix_and_downloads_one(
    sftp_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DROP_SFTP", sftp_server.conn_json)
    drop = sftp_server.root / "drop"
    (drop / "sub").mkdir(parents=True)
    (drop / "in_1.csv").write_bytes(b"a\n1\n")
    (drop / ".in_2.csv.part").write_bytes(b"uploading")
    (drop / "other.csv").write_bytes(b"b\n")
    store = SFTPStore("drop_sftp", "/drop")
    listed = list(store.list_objects("in_"))
    assert [(o.key, o.size) for o in listed] == [("in_1.csv", 4)]
    assert isinstance(listed[0], ObjectInfo) and listed[0].updated.tzinfo is not None
    store.download("in_1.csv", tmp_path / "got.csv")
    assert (tmp_path / "got.csv").read_bytes() == b"a\n1\n"
    with pytest.raises(FileNotFoundError, match="does not exist on the server"):
        list(SFTPStore("drop_sftp", "/missing").list_objects(""))
