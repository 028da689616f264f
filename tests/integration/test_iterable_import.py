"""Iterable "Import Audiences & Activity Data" against the Iterable and Lytics stand-ins.

The stand-in's Export API follows Iterable's API reference (see ``lytics_sandbox.iterable``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lytics_provider.hooks import iterable as iterable_hook
from lytics_provider.hooks.iterable import IterableHook
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.jobs.types.iterable import IterableImportJob
from lytics_provider.pipeline import http
from lytics_provider.transfers.iterable_to_lytics import DATA_TYPES, STREAMS
from lytics_sandbox.iterable import IterableSandbox
from tests.conformance.runner import JobRun
from tests.helpers import serve_connection

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "include" / "jobs" / "iterable_import.yaml"
KEY = "iterable-export-key-0123456789"
NOW = 1_900_000_000.0
BASE_MS = 1_800_000_000_000
EVENTS = {
    "iterable_activity": ("emailSend", "emailOpen", "emailClick"),
    "iterable_in_app_activity": ("inAppOpen", "inAppClick"),
    "iterable_push_activity": ("pushSend", "pushOpen"),
    "iterable_sms_activity": ("smsSend", "smsReceived"),
}
ALL_TYPES = sum(len(types) for types in DATA_TYPES.values())
WALL_CLOCK = time.time


@pytest.fixture(scope="module")
def iterable_stand() -> Iterator[IterableSandbox]:
    with IterableSandbox(api_keys=(KEY,)) as sandbox:
        yield sandbox


@pytest.fixture
def stand(
    iterable_stand: IterableSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[IterableSandbox]:
    iterable_stand.reset()
    iterable_stand.reset_counters()
    iterable_stand.export_limit = (1000, 60.0)
    connection = iterable_stand.connection(KEY, export_calls_per_minute=1000)
    serve_connection(monkeypatch, tmp_path, "iterable_default", connection)
    monkeypatch.setattr("time.time", lambda: NOW)
    yield iterable_stand
    iterable_stand.faults.clear()


def seed_data(stand: IterableSandbox) -> None:
    """30 users and 4 events of each listed type per 10 users, all before :data:`NOW`."""
    for i in range(30):
        stand.put_user(f"U{i}@Example.com", BASE_MS + i, user_id=f"u{i}", firstName=f"F{i}", tier="gold")
    for types in EVENTS.values():
        for n, data_type in enumerate(types):
            for i in range(10):
                stand.add_event(
                    data_type, f"u{i}@example.com", BASE_MS + 1000 * n + i, userId=f"u{i}", campaignId=7,
                    messageId=f"m{i}",
                )  # fmt: skip


def test_example_config_validates_and_builds_its_dag() -> None:
    jobs, errors = load_job_files([EXAMPLE])
    assert errors == []
    config = jobs[0].config
    assert isinstance(config, IterableImportJob) and config.streams == list(STREAMS)
    run = JobRun(config.model_dump(exclude_defaults=False), job_id="iterable_import_example")
    assert run.dag.task_ids == ["import"]


def test_config_errors_name_the_fix() -> None:
    with pytest.raises(ValueError, match="streams"):
        IterableImportJob(type="iterable_import", streams=[])
    with pytest.raises(ValueError, match="event_types of activity is empty"):
        IterableImportJob(type="iterable_import", event_types={"activity": []})


def test_first_run_sends_every_record_to_its_stream_then_only_changes(
    stand: IterableSandbox, lytics: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seed_data(stand)
    report = JobRun({"type": "iterable_import", "page_size": 7}, job_id="it_import").run()["import"]
    users = lytics.collected("iterable_users")
    assert sorted(u["email"] for u in users) == sorted(f"u{i}@example.com" for i in range(30))
    assert {"iterable_user_id", "firstName", "tier", "profileUpdatedAt"} <= set(users[0])
    for stream, types in EVENTS.items():
        events = lytics.collected(stream)
        assert sorted((e["event"], e["email"]) for e in events) == sorted(
            (t, f"u{i}@example.com") for t in types for i in range(10)
        )
        assert all(e["ts"].endswith("+00:00") and e["campaign_id"] == 7 for e in events)
    assert report["users"]["read"] == 30 and report["until"] == "2030-03-17 17:46:40 +00:00"
    assert stand.calls_to("export_json") == ALL_TYPES
    assert not list((tmp_path / "data").glob("**/iterable_*.jsonl*")), "saved exports are removed once sent"

    lytics.clear_collected()
    stand.put_user("u3@example.com", int(NOW * 1000) + 50_000, firstName="Three")
    stand.add_event("smsClick", "u4@example.com", int(NOW * 1000) + 60_000)
    stand.add_event("pushOpen", "u5@example.com", int(NOW * 1000) + 70_000)
    monkeypatch.setattr("time.time", lambda: NOW + 100)
    JobRun({"type": "iterable_import"}, job_id="it_import", day=24).run()
    assert [(u["email"], u["firstName"]) for u in lytics.collected("iterable_users")] == [
        ("u3@example.com", "Three")
    ]
    assert [(e["event"], e["email"]) for e in lytics.collected("iterable_sms_activity")] == [
        ("smsClick", "u4@example.com")
    ]
    assert [(e["event"], e["email"]) for e in lytics.collected("iterable_push_activity")] == [
        ("pushOpen", "u5@example.com")
    ]
    assert lytics.collected("iterable_activity") == lytics.collected("iterable_in_app_activity") == []


def test_a_retry_after_lytics_failed_midway_sends_each_record_once(
    stand: IterableSandbox, lytics: Any
) -> None:
    seed_data(stand)
    config = {"type": "iterable_import", "streams": ["activity"], "page_size": 4}
    run = JobRun(config, job_id="it_retry")
    lytics.faults.add("5xx", status=500, path_regex=r"/collect/json/iterable_activity", after=4, times=None)
    with pytest.raises(Exception):  # noqa: B017 - the attempt fails on any error
        run.run()
    lytics.faults.clear()
    assert len(lytics.collected("iterable_activity")) == 14  # emailSend (4, 4, 2), emailOpen (4)
    exports = stand.calls_to("export_json")
    run.run()
    events = lytics.collected("iterable_activity")
    keys = [(e["event"], e["email"], e["ts"]) for e in events]
    assert len(keys) == 30 == len(set(keys))
    assert stand.calls_to("export_json") - exports == len(DATA_TYPES["activity"]) - 2, (
        "the data type being sent was read from the saved export, not exported again"
    )


def test_a_dry_run_sends_nothing_and_moves_no_watermark(stand: IterableSandbox, lytics: Any) -> None:
    seed_data(stand)
    report = JobRun({"type": "iterable_import"}, job_id="it_dry", dry_run=True).run()["import"]
    assert report["dry_run"] and report["activity"]["read"] == 30
    assert all(lytics.collected(stream) == [] for stream in STREAMS.values())
    JobRun({"type": "iterable_import", "streams": ["users"]}, job_id="it_dry", day=24).run()
    assert len(lytics.collected("iterable_users")) == 30


def test_event_types_and_user_fields_narrow_the_exports(stand: IterableSandbox, lytics: Any) -> None:
    seed_data(stand)
    config = {
        "type": "iterable_import",
        "streams": ["users", "sms_activity"],
        "event_types": {"sms_activity": ["smsReceived"]},
        "user_fields": ["email", "tier"],
    }
    JobRun(config, job_id="it_narrow").run()
    assert {tuple(sorted(u)) for u in lytics.collected("iterable_users")} == {("email", "tier")}
    assert {e["event"] for e in lytics.collected("iterable_sms_activity")} == {"smsReceived"}
    assert stand.calls_to("export_json") == 2


def test_the_export_budget_holds_iterables_limit(
    stand: IterableSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The stand-in refuses a fifth export within its window; two hooks (two tasks) sharing the
    connection's budget of 4 wait instead of meeting a 429."""
    monkeypatch.setattr("time.time", WALL_CLOCK)
    monkeypatch.setattr(iterable_hook, "EXPORT_WINDOW", 1.5)
    stand.export_limit = (4, 1.4)
    monkeypatch.setenv("AIRFLOW_CONN_ITERABLE_DEFAULT", json.dumps(stand.connection(KEY)))
    first, second = IterableHook(), IterableHook()
    started = time.monotonic()
    for n in range(3):
        first.export_to_file("emailOpen", "2020-01-01 00:00:00", "2030-01-01 00:00:00", tmp_path / f"a{n}")
        second.export_to_file("emailOpen", "2020-01-01 00:00:00", "2030-01-01 00:00:00", tmp_path / f"b{n}")
    assert stand.export_refused == 0 and stand.calls_to("export_json") == 6
    assert time.monotonic() - started >= 1.4


def test_export_errors_follow_iterables_contract(stand: IterableSandbox, tmp_path: Path) -> None:
    hook = IterableHook()
    with pytest.raises(http.PermanentServiceError, match="Invalid dataTypeName"):
        hook.export_to_file("emailOpened", "2020-01-01 00:00:00", "2030-01-01 00:00:00", tmp_path / "x")
    with pytest.raises(http.PermanentServiceError, match="startDateTime"):
        hook.export_to_file("emailOpen", "2020-01-01", "2030-01-01 00:00:00", tmp_path / "y")
    assert not list(tmp_path.glob("[xy]*")), "no file is left of a refused export"
