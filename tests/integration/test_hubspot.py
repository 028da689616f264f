"""HubSpot: export and import jobs against the HubSpot and Lytics stand-ins.

The stand-in follows HubSpot's published API reference (contacts v3, lists v3, email events,
private-app auth and the 10-second rate limit); its module docstring names the pages.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.hubspot import HubspotHook
from lytics_provider.integrations.catalog import read_integration, todo_entries
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.pipeline import http
from lytics_sandbox.hubspot import HubspotData, HubspotSandbox
from lytics_sandbox.lytics import LyticsSandbox
from lytics_sandbox.synth import SyntheticAccount
from tests.conformance.runner import JobRun
from tests.helpers import lytics_conn

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = [
    REPO / "include" / "jobs" / "hubspot_export.yaml",
    REPO / "include" / "jobs" / "hubspot_import.yaml",
]
DECLARATION = REPO / "lytics_provider" / "integrations" / "hubspot.yaml"
SLUG = "hs_members"
SIZE = 300


@pytest.fixture(scope="module")
def hubspot() -> Iterator[HubspotSandbox]:
    with HubspotSandbox() as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def lytics() -> Iterator[LyticsSandbox]:
    with LyticsSandbox(SyntheticAccount(seed=7, audiences={SLUG: SIZE}, invalid_email_rate=0.05)) as sandbox:
        yield sandbox


@pytest.fixture
def env(
    hubspot: HubspotSandbox, lytics: LyticsSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> HubspotSandbox:
    hubspot.data = HubspotData()
    hubspot.faults.clear()
    hubspot.reset_counters()
    lytics.account = SyntheticAccount(seed=7, audiences={SLUG: SIZE}, invalid_email_rate=0.05)
    lytics.clear_collected()
    monkeypatch.setenv("AIRFLOW_CONN_HUBSPOT_DEFAULT", json.dumps(hubspot.connection()))
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics.base_url))
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(http.RetryPolicy, "backoff", lambda self, attempt: 0.0)
    return hubspot


def export_config(**changes: Any) -> dict[str, Any]:
    return {
        "type": "hubspot_export",
        "audience": SLUG,
        "list_name": "Lytics HS",
        "batch_size": 120,
        **changes,
    }


def valid_emails(lytics: LyticsSandbox) -> set[str]:
    return {m["email"].lower() for m in lytics.expected_members(SLUG) if "@" in (m.get("email") or "")}


# -- registration ---------------------------------------------------------------------------------
def test_registration_is_complete() -> None:
    assert todo_entries(read_integration(DECLARATION)) == []


def test_example_configs_load() -> None:
    jobs, errors = load_job_files(EXAMPLES)
    assert errors == []
    assert sorted(job.config.type for job in jobs) == ["hubspot_export", "hubspot_import"]


def test_subscription_properties_are_refused() -> None:
    with pytest.raises(ValueError, match="hs_email_optout"):
        JobRun(export_config(property_map={"optout": "hs_email_optout"}), job_id="hs_refused")


# -- Test button ----------------------------------------------------------------------------------
def test_connection_test_makes_one_authenticated_call(
    env: HubspotSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok, message = HubspotHook().test_connection()
    assert ok, message
    assert "HubSpot account 4242" in message
    assert env.calls_to("account") == 1
    wrong = {**env.connection(), "password": "pat-na1-wrong-token"}
    monkeypatch.setenv("AIRFLOW_CONN_HUBSPOT_DEFAULT", json.dumps(wrong))
    ok, message = HubspotHook().test_connection()
    assert not ok and "refused the credentials" in message and "401" in message
    assert "pat-na1-wrong-token" not in message


# -- export ---------------------------------------------------------------------------------------
def test_export_upserts_properties_adds_to_list_and_rejects_bad_emails(
    env: HubspotSandbox, lytics: LyticsSandbox
) -> None:
    xcoms = JobRun(export_config(), job_id="hs_export").run()
    listing = env.data.list_by_name("Lytics HS")
    assert listing is not None and listing["processingType"] == "MANUAL"
    expected = valid_emails(lytics)
    assert env.data.members(listing["listId"]) == expected
    member = next(m for m in lytics.expected_members(SLUG) if (m.get("email") or "").lower() in expected)
    contact = env.data.contacts[env.data.by_email[member["email"].lower()]]
    assert contact["properties"]["firstname"] == member["first_name"]
    delivery = xcoms["deliver"]
    assert delivery["list"]["name"] == "Lytics HS"
    rejects = [json.loads(line) for line in Path(delivery["rejects_file"]).read_text().splitlines()]
    assert len(rejects) == SIZE - len(expected) and all("email" in r["reason"] for r in rejects)
    # 300 members in batches of 120: upserts of <= 100 and one list call per batch
    assert env.calls_to("contacts_upsert") == sum(-(-n // 100) for n in _batches(len(expected), 120))
    assert env.calls_to("memberships_add") == len(_batches(len(expected), 120))


def _batches(n: int, size: int) -> list[int]:
    return [min(size, n - start) for start in range(0, n, size)]


def test_churn_removes_only_exits_the_job_added(env: HubspotSandbox, lytics: LyticsSandbox) -> None:
    JobRun(export_config(), job_id="hs_churn").run()
    list_id = env.data.list_by_name("Lytics HS")["listId"]
    outsider, _ = env.data.upsert("outsider@example.org", {})
    env.data.memberships[list_id][outsider] = 1
    first = {m["_uid"]: m for m in lytics.expected_members(SLUG)}
    lytics.account.set_churn(SLUG, exits=9, enters=6, changes=0)
    lytics.set_version(SLUG, 1)
    second = {m["_uid"]: m for m in lytics.expected_members(SLUG)}
    env.reset_counters()
    report = JobRun(export_config(), job_id="hs_churn", day=24).run()["report"]
    assert (report["enters"], report["exits"]) == (6, 9)
    assert env.data.members(list_id) == valid_emails(lytics) | {"outsider@example.org"}
    exited = {
        first[u]["email"].lower() for u in set(first) - set(second) if "@" in (first[u].get("email") or "")
    }
    assert all(email in env.data.by_email for email in exited), "exits leave the contact in HubSpot"
    assert env.calls_to("memberships_remove") == 1
    assert env.calls_to("contacts_read") == 0, "the record ids saved when the job added them are used"


def test_dry_run_sends_nothing_and_creates_no_list(env: HubspotSandbox) -> None:
    xcoms = JobRun(export_config(), job_id="hs_dry", dry_run=True).run()
    assert env.data.lists == {} and env.data.contacts == {}
    assert xcoms["deliver"]["planned"]["adds"] > 0


def test_interrupted_batch_is_resumed_not_resent(env: HubspotSandbox, lytics: LyticsSandbox) -> None:
    run = JobRun(export_config(), job_id="hs_resume")
    run.run(until="scan")
    env.faults.add("5xx", status=503, path_regex=r"/memberships/add", method="PUT", after=1, times=None)
    with pytest.raises(Exception):  # noqa: B017 - the attempt fails on any error
        run.run()
    env.faults.clear()
    env.reset_counters()
    run.run()
    expected = valid_emails(lytics)
    assert env.data.members(env.data.list_by_name("Lytics HS")["listId"]) == expected
    assert env.calls_to("memberships_add") == len(_batches(len(expected), 120)) - 1


def test_wrong_token_fails_fast_without_secret(env: HubspotSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_HUBSPOT_DEFAULT", json.dumps({**env.connection(), "password": "pat-bad-1"})
    )
    run = JobRun(export_config(), job_id="hs_badtoken")
    run.run(until="scan")
    with pytest.raises(AirflowFailException) as failure:
        run.run()
    assert "pat-bad-1" not in str(failure.value)
    assert env.calls_to("account") == 0 and env.data.contacts == {}


# -- rate limits ----------------------------------------------------------------------------------
def test_budget_is_shared_by_every_task_of_the_connection(
    env: HubspotSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two hooks (two tasks) on one connection never pass the stand-in's limit together: a shared
    budget of 6 per 0.5 s against the stand-in's 8 (two budgets would send 12 at once and meet a
    429); the margin of 2 absorbs the scheduling delays of a busy machine."""
    from lytics_sandbox.hubspot import RateWindow

    env.window = RateWindow(limit=8, interval=0.5)
    try:
        monkeypatch.setenv(
            "AIRFLOW_CONN_HUBSPOT_DEFAULT",
            json.dumps(env.connection(calls_per_interval=6, interval_seconds=0.5)),
        )
        first, second = HubspotHook(), HubspotHook()
        for _ in range(10):
            first.check_call()
            second.check_call()
        assert env.window.refused == 0 and env.window.accepted == 20
        assert first.ledger is not None and first.ledger.path == second.ledger.path
    finally:
        env.window = None


def test_a_429_pauses_the_connection_for_one_interval(
    env: HubspotSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lytics_sandbox.hubspot import RateWindow

    env.window = RateWindow(limit=3, interval=0.4)
    try:
        monkeypatch.setenv("AIRFLOW_CONN_HUBSPOT_DEFAULT", json.dumps(env.connection(calls_per_interval=50)))
        hook = HubspotHook()
        for _ in range(5):
            hook.check_call()  # the client budget is too generous: the stand-in answers 429
        assert env.window.refused >= 1
        usage = hook.ledger.usage()
        assert usage.paused_until > 0, "the 429 paused the shared budget"
    finally:
        env.window = None


# -- import ---------------------------------------------------------------------------------------
def seed_hubspot(data: HubspotData, contacts: int, events: int) -> None:
    for i in range(contacts):
        data.upsert(f"person{i}@example.com", {"firstname": f"P{i}", "lifecyclestage": "lead"})
    for i in range(events):
        data.add_event(
            ("OPEN", "CLICK", "DELIVERED")[i % 3], f"person{i % contacts}@example.com", 1_800_000_000_000 + i
        )


def import_config(**changes: Any) -> dict[str, Any]:
    return {"type": "hubspot_import", **changes}


def test_import_reads_contacts_and_events_then_only_changes(
    env: HubspotSandbox, lytics: LyticsSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_hubspot(env.data, contacts=450, events=2300)
    monkeypatch.setattr("time.time", lambda: 1_900_000_000.0)
    report = JobRun(import_config(), job_id="hs_import").run()["import"]
    contacts = lytics.collected("hubspot_contacts")
    assert {c["email"] for c in contacts} == {f"person{i}@example.com" for i in range(450)}
    assert {"hubspot_id", "first_name", "lifecyclestage"} <= set(contacts[0])
    assert len(lytics.collected("hubspot_activity")) == 2300
    assert report["contacts"]["read"] == 450 and report["events"]["read"] == 2300
    assert env.calls_to("contacts_search") == 3  # 200 a page
    lytics.clear_collected()
    env.data.upsert("person7@example.com", {"firstname": "Seven"})
    env.data.add_event("CLICK", "person7@example.com", 1_900_000_000_000 + 5)
    monkeypatch.setattr("time.time", lambda: 1_900_000_100.0)
    JobRun(import_config(), job_id="hs_import", day=24).run()
    assert [c["email"] for c in lytics.collected("hubspot_contacts")] == ["person7@example.com"]
    assert [e["event"] for e in lytics.collected("hubspot_activity")] == ["click"]


def test_import_resumes_after_the_last_page_lytics_accepted(
    env: HubspotSandbox, lytics: LyticsSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_hubspot(env.data, contacts=50, events=3500)
    monkeypatch.setattr("time.time", lambda: 1_900_000_000.0)
    run = JobRun(import_config(import_contacts=False), job_id="hs_import_resume")
    lytics.faults.add("5xx", status=500, path_regex=r"/collect/json/hubspot_activity", after=2, times=None)
    with pytest.raises(Exception):  # noqa: B017 - the attempt fails on any error
        run.run()
    lytics.faults.clear()
    assert len(lytics.collected("hubspot_activity")) == 2000
    run.run()
    events = lytics.collected("hubspot_activity")
    assert len(events) == 3500 and len({e["event_id"] for e in events}) == 3500


def test_a_stale_saved_record_id_is_looked_up_by_email(env: HubspotSandbox, lytics: LyticsSandbox) -> None:
    """A contact merged in HubSpot since the job added it: its saved id is missing, the email finds it."""
    from lytics_provider.sync.refs import RefStore

    JobRun(export_config(), job_id="hs_stale").run()
    list_id = env.data.list_by_name("Lytics HS")["listId"]
    first = {m["_uid"]: m for m in lytics.expected_members(SLUG)}
    lytics.account.set_churn(SLUG, exits=4, enters=0, changes=0)
    lytics.set_version(SLUG, 1)
    gone = [
        first[u]["email"].lower() for u in set(first) - {m["_uid"] for m in lytics.expected_members(SLUG)}
    ]
    gone = [e for e in gone if e in env.data.by_email]
    refs = RefStore("hs_stale")
    refs.save(list_id, [(email, "999999") for email in gone])
    refs.close()
    env.reset_counters()
    JobRun(export_config(), job_id="hs_stale", day=24).run()
    assert env.data.members(list_id) == valid_emails(lytics)
    assert env.calls_to("contacts_read") == 1 and env.calls_to("memberships_remove") == 2
