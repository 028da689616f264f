"""Brevo Import Users & Activity against the Brevo stand-in (``lytics_sandbox.brevo``, after Brevo's
published API reference) and the Lytics stand-in: contacts of lists into ``brevo_users``,
transactional email and SMS events into ``brevo_activity`` and ``brevo_sms_activity``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from lytics_provider.integrations.catalog import read_integration, todo_entries
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.pipeline import http
from lytics_sandbox.brevo import BrevoData, BrevoSandbox
from lytics_sandbox.lytics import LyticsSandbox
from lytics_sandbox.synth import SyntheticAccount
from tests.conformance.runner import JobRun
from tests.helpers import lytics_conn

REPO = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000_000  # 2027-01-15
NOW = 1_800_100_000.0
DAY = 86_400_000
CONFIG = {"type": "brevo_import", "lists": ["Newsletter", "Customers"], "initial_since": "2026-09-01"}


@pytest.fixture(scope="module")
def brevo_server() -> Iterator[BrevoSandbox]:
    with BrevoSandbox() as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def lytics_server() -> Iterator[LyticsSandbox]:
    with LyticsSandbox(SyntheticAccount(seed=3, audiences={"all": 10})) as sandbox:
        yield sandbox


@pytest.fixture
def env(
    brevo_server: BrevoSandbox, lytics_server: LyticsSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> BrevoData:
    brevo_server.reset()
    lytics_server.clear_collected()
    lytics_server.faults.clear()
    monkeypatch.setenv("AIRFLOW_CONN_BREVO_DEFAULT", json.dumps(brevo_server.connection()))
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics_server.base_url))
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(http.RetryPolicy, "backoff", lambda self, attempt: 0.0)
    data = brevo_server.data
    news, customers = data.add_list("Newsletter"), data.add_list("Customers")
    data.add_list("Other")
    for i in range(700):  # two pages of the first list; 100 contacts in both lists
        lists = {news} if i < 600 else {news, customers}
        data.upsert(f"c{i}@example.com", lists, at=T0 + i, FIRSTNAME=f"C{i}", SMS=f"+331000{i:05d}")
    for i in range(700, 800):
        data.upsert(f"c{i}@example.com", {customers}, at=T0 + i)
    data.upsert("elsewhere@example.com", {data.add_list("Unchosen")}, at=T0)
    for i in range(6000):  # two pages of 5,000 in the second of the first run's two date ranges
        data.add_event(
            "email", T0 - 45 * DAY + i * 1000, email=f"c{i % 800}@example.com", event="delivered",
            messageId=f"<m{i}@brevo>", subject="Hello", tag="welcome",
        )  # fmt: skip
    for i in range(150):
        data.add_event("sms", T0 + i, phoneNumber=f"+331000{i:05d}", event="delivered", messageId=f"s{i}")
    monkeypatch.setattr("time.time", lambda: NOW)
    return data


def test_registration_is_complete() -> None:
    assert todo_entries(read_integration(REPO / "lytics_provider" / "integrations" / "brevo.yaml")) == []


def test_example_config_validates_and_builds_its_dag() -> None:
    jobs, errors = load_job_files([REPO / "include" / "jobs" / "brevo_import.yaml"])
    assert errors == [] and jobs[0].config.type == "brevo_import"
    assert jobs[0].config.time_of_day == "06:00" and jobs[0].config.timezone == "America/New_York"
    run = JobRun(jobs[0].config.model_dump(exclude_none=True), job_id="brevo_example")
    assert [t.task_id for t in run.dag.tasks] == ["import"]


def test_first_run_sends_every_record_then_only_changes(
    env: BrevoData, brevo_server: BrevoSandbox, lytics_server: LyticsSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = JobRun(CONFIG, job_id="brevo_import").run()["import"]
    users = lytics_server.collected("brevo_users")
    assert sorted(u["email"] for u in users) == sorted(f"c{i}@example.com" for i in range(800))
    first = next(u for u in users if u["email"] == "c1@example.com")
    assert first["first_name"] == "C1" and first["phone"] == "+33100000001" and first["brevo_id"]
    assert report["users"]["read"] == 800 and brevo_server.calls_to("list_contacts") == 3
    activity = lytics_server.collected("brevo_activity")
    assert len(activity) == 6000 and len({e["event_id"] for e in activity}) == 6000
    assert activity[0]["email"] == "c0@example.com" and activity[0]["event"] == "delivered"
    assert brevo_server.calls_to("email_events") == 3  # an empty range, then two pages
    sms = lytics_server.collected("brevo_sms_activity")
    assert len(sms) == 150 and sms[0]["phone"] == "+33100000000" and brevo_server.calls_to("sms_events") == 3

    lytics_server.clear_collected()
    now = NOW + 100
    env.upsert("c3@example.com", at=int(now * 1000) - 50, FIRSTNAME="Three")
    env.upsert("c650@example.com", at=int(now * 1000) - 40)
    env.add_event(
        "email", int(now * 1000) - 30, email="c3@example.com", event="opened", messageId="<n@brevo>"
    )
    env.add_event("sms", int(now * 1000) - 20, phoneNumber="+33100000003", event="replied", messageId="s-new")
    env.upsert("c4@example.com", at=int(now * 1000) + 5_000)  # after the window: the next run's
    monkeypatch.setattr("time.time", lambda: now)
    JobRun(CONFIG, job_id="brevo_import", day=24).run()
    assert sorted(u["email"] for u in lytics_server.collected("brevo_users")) == [
        "c3@example.com",
        "c650@example.com",
    ]
    assert [(e["email"], e["event"]) for e in lytics_server.collected("brevo_activity")] == [
        ("c3@example.com", "opened")
    ]
    assert [e["event"] for e in lytics_server.collected("brevo_sms_activity")] == ["replied"]


def test_a_retry_after_lytics_failed_midway_sends_each_record_once(
    env: BrevoData, lytics_server: LyticsSandbox
) -> None:
    run = JobRun(CONFIG, job_id="brevo_retry")
    lytics_server.faults.add("5xx", status=500, path_regex=r"/collect/json/brevo_users", after=1, times=None)
    with pytest.raises(Exception):  # noqa: B017 - the attempt fails on any error
        run.run()
    lytics_server.faults.clear()
    assert 0 < len(lytics_server.collected("brevo_users")) < 800
    run.run()
    users = lytics_server.collected("brevo_users")
    assert len(users) == 800 and len({u["email"] for u in users}) == 800
    activity = lytics_server.collected("brevo_activity")
    assert len(activity) == 6000 and len({e["event_id"] for e in activity}) == 6000
    assert len(lytics_server.collected("brevo_sms_activity")) == 150


def test_a_dry_run_sends_nothing_and_moves_no_watermark(env: BrevoData, lytics_server: LyticsSandbox) -> None:
    report = JobRun(CONFIG, job_id="brevo_dry", dry_run=True).run()["import"]
    assert report["dry_run"] and report["users"]["read"] == 800
    assert all(
        lytics_server.collected(s) == [] for s in ("brevo_users", "brevo_activity", "brevo_sms_activity")
    )
    JobRun(CONFIG, job_id="brevo_dry", day=24).run()
    assert len(lytics_server.collected("brevo_users")) == 800


def test_activity_can_be_left_out_and_an_unknown_list_is_named(
    env: BrevoData, lytics_server: LyticsSandbox
) -> None:
    config = {**CONFIG, "import_activity": False, "import_sms_activity": False}
    report = JobRun(config, job_id="brevo_users_only").run()["import"]
    assert set(report) >= {"users", "lists"} and "activity" not in report and "sms_activity" not in report
    assert lytics_server.collected("brevo_activity") == []
    with pytest.raises(ValueError, match=r"Brevo list 'Nope' not found"):
        JobRun({**CONFIG, "lists": ["Nope"]}, job_id="brevo_nope").run()
