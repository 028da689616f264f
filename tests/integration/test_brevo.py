"""Brevo: the hook (api-key, 429 with x-sib-ratelimit-reset, Test button), Export Users, and Import
Users & Activity (contacts of lists into ``brevo_users``, transactional email and SMS events into
``brevo_activity`` and ``brevo_sms_activity``) against the stand-in (``lytics_sandbox.brevo``),
which follows Brevo's published API reference (https://developers.brevo.com/reference), and the
Lytics stand-in.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.brevo import BrevoHook
from lytics_provider.integrations.catalog import read_integration, todo_entries
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.transfers.brevo_to_lytics import date_ranges
from lytics_sandbox.brevo import BrevoData, BrevoSandbox
from lytics_sandbox.lytics import LyticsSandbox
from lytics_sandbox.synth import SyntheticAccount
from tests.conformance.runner import JobRun
from tests.helpers import audience_emails, serve_connection

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000_000  # 2027-01-15
NOW = 1_800_100_000.0
DAY = 86_400_000
CONFIG = {"type": "brevo_import", "lists": ["Newsletter", "Customers"], "initial_since": "2026-09-01"}


@pytest.fixture(scope="module")
def brevo_server() -> Iterator[BrevoSandbox]:
    with BrevoSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def lytics_account() -> SyntheticAccount:
    return SyntheticAccount(seed=13, audiences={"all": 300, "vip": 120}, invalid_email_rate=0.05)


@pytest.fixture
def brevo(brevo_server: BrevoSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> BrevoSandbox:
    brevo_server.reset()
    serve_connection(monkeypatch, tmp_path, "brevo_default", brevo_server.connection())
    return brevo_server


def test_test_button_and_a_wrong_key(brevo: BrevoSandbox) -> None:
    ok, message = BrevoHook().test_connection()
    assert ok, message
    key = brevo.api_key
    brevo.api_key = "revoked"
    ok, message = BrevoHook().test_connection()
    assert not ok and "refused the credentials" in message and key not in message


def test_a_429_pauses_the_connection_until_the_reset_and_sends_again(brevo: BrevoSandbox) -> None:
    list_id = brevo.data.add_list("L")
    brevo.calls_per_window = 2  # the server allows fewer calls than the connection's budget
    hook = BrevoHook()
    for n in range(5):
        hook.import_contacts(list_id, [{"email": f"c{n}@example.com", "attributes": {}}])
    assert brevo.rate_limited >= 1 and hook.rate_limited == brevo.rate_limited
    assert brevo.data.members(list_id) == {f"c{n}@example.com" for n in range(5)}


def test_export_imports_members_with_attributes_and_removes_exits(brevo: BrevoSandbox, lytics: Any) -> None:
    list_id = brevo.data.add_list("VIP")
    config = {"type": "brevo_export", "audience": "vip", "list": "VIP", "batch_size": 40}
    report = JobRun(config, "brevo_vip").run()["report"]
    valid, invalid = audience_emails(lytics, "vip")
    assert invalid and brevo.data.members(list_id) == valid
    assert report["delivery"]["rejected"] == len(invalid)
    assert brevo.rate_limited == 0
    assert any(c["attributes"].get("FIRSTNAME") for c in brevo.data.contacts.values())
    assert brevo.calls_to("import") == -(-len(valid) // 40)
    lytics.account.set_churn("vip", exits=4, enters=4, changes=0)
    lytics.set_version("vip", 1)
    report = JobRun(config, "brevo_vip", day=24).run()["report"]
    assert report["exits"] == 4 and brevo.calls_to("remove") == 1
    assert len(brevo.data.contacts) >= len(valid)  # exits leave the list, the contacts stay


def test_an_unknown_list_names_the_lists(brevo: BrevoSandbox, lytics: Any) -> None:
    brevo.data.add_list("VIP")
    with pytest.raises(ValueError, match=r"Brevo list 'Nope' not found; lists: \d+ \(VIP\)"):
        JobRun({"type": "brevo_export", "audience": "vip", "list": "Nope"}, "brevo_nope").run()


def test_a_revoked_key_fails_fast(brevo: BrevoSandbox, lytics: Any) -> None:
    brevo.data.add_list("VIP")
    run = JobRun({"type": "brevo_export", "audience": "vip", "list": "VIP"}, "brevo_revoked")
    run.run(until="scan")
    brevo.api_key = "revoked"
    with pytest.raises(AirflowFailException):
        run.run()


def test_example_config_loads() -> None:
    loaded, errors = load_job_files([ROOT / "include" / "jobs" / "brevo_export.yaml"])
    assert errors == [] and loaded[0].config.type == "brevo_export" and loaded[0].config.keep_updated


def test_registration_is_complete() -> None:
    assert todo_entries(read_integration(ROOT / "lytics_provider" / "integrations" / "brevo.yaml")) == []


@pytest.fixture
def seeded(brevo: BrevoSandbox, lytics: LyticsSandbox, monkeypatch: pytest.MonkeyPatch) -> BrevoData:
    """Two chosen lists (800 contacts, 100 in both), one list not chosen, 6,000 email events and 150
    SMS events; the clock at :data:`NOW`."""
    data = brevo.data
    news, customers = data.add_list("Newsletter"), data.add_list("Customers")
    data.add_list("Other")
    for i in range(700):  # two pages of the first list; 100 contacts in both lists
        lists = {news} if i < 600 else {news, customers}
        data.upsert(f"c{i}@example.com", lists, at=T0 + i, FIRSTNAME=f"C{i}", SMS=f"+331000{i:05d}")
    for i in range(700, 800):
        data.upsert(f"c{i}@example.com", {customers}, at=T0 + i)
    data.upsert("elsewhere@example.com", {data.add_list("Unchosen")}, at=T0)
    for i in range(6000):  # two pages of 5,000
        data.add_event(
            "email", T0 - 45 * DAY + i * 1000, email=f"c{i % 800}@example.com", event="delivered",
            messageId=f"<m{i}@brevo>", subject="Hello", tag="welcome",
        )  # fmt: skip
    for i in range(150):
        data.add_event("sms", T0 + i, phoneNumber=f"+331000{i:05d}", event="delivered", messageId=f"s{i}")
    monkeypatch.setattr("time.time", lambda: NOW)
    return data


def test_a_watermark_older_than_90_days_is_read_in_date_ranges_of_90_days() -> None:
    assert date_ranges(T0 - 120 * DAY, T0) == [("2026-09-17", "2026-12-15"), ("2026-12-16", "2027-01-15")]


def test_example_config_validates_and_builds_its_dag() -> None:
    jobs, errors = load_job_files([ROOT / "include" / "jobs" / "brevo_import.yaml"])
    assert errors == [] and jobs[0].config.type == "brevo_import"
    assert jobs[0].config.time_of_day == "06:00" and jobs[0].config.timezone == "America/New_York"
    run = JobRun(jobs[0].config.model_dump(exclude_none=True), job_id="brevo_example")
    assert [t.task_id for t in run.dag.tasks] == ["import"]


def test_first_run_sends_every_record_then_only_changes(
    seeded: BrevoData, brevo: BrevoSandbox, lytics: LyticsSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = JobRun(CONFIG, job_id="brevo_import").run()["import"]
    users = lytics.collected("brevo_users")
    assert sorted(u["email"] for u in users) == sorted(f"c{i}@example.com" for i in range(800))
    first = next(u for u in users if u["email"] == "c1@example.com")
    assert first["first_name"] == "C1" and first["phone"] == "+33100000001" and first["brevo_id"]
    assert report["users"]["read"] == 800 and brevo.calls_to("list_contacts") == 3
    activity = lytics.collected("brevo_activity")
    assert len(activity) == 6000 and len({e["event_id"] for e in activity}) == 6000
    assert activity[0]["email"] == "c0@example.com" and activity[0]["event"] == "delivered"
    assert brevo.calls_to("email_events") == 2  # the last 90 days only: one date range
    assert (
        report["activity"]["since_ms"] == report["sms_activity"]["since_ms"] == 1_792_368_000_000
    )  # 2026-10-19
    sms = lytics.collected("brevo_sms_activity")
    assert len(sms) == 150 and sms[0]["phone"] == "+33100000000" and brevo.calls_to("sms_events") == 2

    lytics.clear_collected()
    now = NOW + 100
    seeded.upsert("c3@example.com", at=int(now * 1000) - 50, FIRSTNAME="Three")
    seeded.upsert("c650@example.com", at=int(now * 1000) - 40)
    seeded.add_event(
        "email", int(now * 1000) - 30, email="c3@example.com", event="opened", messageId="<n@brevo>"
    )
    seeded.add_event(
        "sms", int(now * 1000) - 20, phoneNumber="+33100000003", event="replied", messageId="s-new"
    )
    seeded.upsert("c4@example.com", at=int(now * 1000) + 5_000)  # after the window: the next run's
    monkeypatch.setattr("time.time", lambda: now)
    JobRun(CONFIG, job_id="brevo_import", day=24).run()
    assert sorted(u["email"] for u in lytics.collected("brevo_users")) == [
        "c3@example.com",
        "c650@example.com",
    ]
    assert [(e["email"], e["event"]) for e in lytics.collected("brevo_activity")] == [
        ("c3@example.com", "opened")
    ]
    assert [e["event"] for e in lytics.collected("brevo_sms_activity")] == ["replied"]


def test_a_retry_after_lytics_failed_midway_sends_each_record_once(
    seeded: BrevoData, lytics: LyticsSandbox
) -> None:
    run = JobRun(CONFIG, job_id="brevo_retry")
    lytics.faults.add("5xx", status=500, path_regex=r"/collect/json/brevo_users", after=1, times=None)
    with pytest.raises(Exception):  # noqa: B017 - the attempt fails on any error
        run.run()
    lytics.faults.clear()
    assert 0 < len(lytics.collected("brevo_users")) < 800
    run.run()
    users = lytics.collected("brevo_users")
    assert len(users) == 800 and len({u["email"] for u in users}) == 800
    activity = lytics.collected("brevo_activity")
    assert len(activity) == 6000 and len({e["event_id"] for e in activity}) == 6000
    assert len(lytics.collected("brevo_sms_activity")) == 150


def test_a_dry_run_sends_nothing_and_moves_no_watermark(seeded: BrevoData, lytics: LyticsSandbox) -> None:
    report = JobRun(CONFIG, job_id="brevo_dry", dry_run=True).run()["import"]
    assert report["dry_run"] and report["users"]["read"] == 800
    assert all(lytics.collected(s) == [] for s in ("brevo_users", "brevo_activity", "brevo_sms_activity"))
    JobRun(CONFIG, job_id="brevo_dry", day=24).run()
    assert len(lytics.collected("brevo_users")) == 800


def test_activity_can_be_left_out_and_an_unknown_list_is_named(
    seeded: BrevoData, lytics: LyticsSandbox
) -> None:
    config = {**CONFIG, "import_activity": False, "import_sms_activity": False}
    report = JobRun(config, job_id="brevo_users_only").run()["import"]
    assert set(report) >= {"users", "lists"} and "activity" not in report and "sms_activity" not in report
    assert lytics.collected("brevo_activity") == []
    with pytest.raises(ValueError, match=r"Brevo list 'Nope' not found"):
        JobRun({**CONFIG, "lists": ["Nope"]}, job_id="brevo_nope").run()
