"""Klaviyo: export and import jobs against the Klaviyo and Lytics stand-ins.

The stand-in follows Klaviyo's API reference and its vendor-owned OpenAPI document
(https://github.com/klaviyo/openapi, ``openapi/stable.json``); its module docstring names them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.klaviyo import KlaviyoHook
from lytics_provider.integrations.catalog import read_integration, todo_entries
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.pipeline import http
from lytics_sandbox.klaviyo import TIERS, KlaviyoData, KlaviyoSandbox, TierLimits
from lytics_sandbox.lytics import LyticsSandbox
from lytics_sandbox.synth import SyntheticAccount
from tests.conformance.runner import JobRun
from tests.helpers import lytics_conn

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = [
    REPO / "include" / "jobs" / "klaviyo_export.yaml",
    REPO / "include" / "jobs" / "klaviyo_import.yaml",
]
DECLARATION = REPO / "lytics_provider" / "integrations" / "klaviyo.yaml"
SLUG = "kl_members"
SIZE = 300


@pytest.fixture(scope="module")
def klaviyo() -> Iterator[KlaviyoSandbox]:
    with KlaviyoSandbox() as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def lytics() -> Iterator[LyticsSandbox]:
    with LyticsSandbox(SyntheticAccount(seed=9, audiences={SLUG: SIZE}, invalid_email_rate=0.05)) as sandbox:
        yield sandbox


@pytest.fixture
def env(
    klaviyo: KlaviyoSandbox, lytics: LyticsSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> KlaviyoSandbox:
    klaviyo.data = KlaviyoData()
    klaviyo.faults.clear()
    klaviyo.reset_counters()
    klaviyo.enforce_limits = False
    klaviyo.limits = {tier: TierLimits(burst, steady) for tier, (burst, steady) in TIERS.items()}
    lytics.account = SyntheticAccount(seed=9, audiences={SLUG: SIZE}, invalid_email_rate=0.05)
    lytics.clear_collected()
    monkeypatch.setenv("AIRFLOW_CONN_KLAVIYO_DEFAULT", json.dumps(klaviyo.connection()))
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics.base_url))
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(http.RetryPolicy, "backoff", lambda self, attempt: 0.0)
    return klaviyo


def export_config(**changes: Any) -> dict[str, Any]:
    return {
        "type": "klaviyo_export",
        "audience": SLUG,
        "list_name": "Lytics KL",
        "batch_size": 120,
        "poll_interval": 0,
        **changes,
    }


def valid_emails(lytics: LyticsSandbox) -> set[str]:
    return {m["email"].lower() for m in lytics.expected_members(SLUG) if "@" in (m.get("email") or "")}


def test_registration_is_complete() -> None:
    assert todo_entries(read_integration(DECLARATION)) == []


def test_example_configs_load() -> None:
    jobs, errors = load_job_files(EXAMPLES)
    assert errors == []
    assert sorted(job.config.type for job in jobs) == ["klaviyo_export", "klaviyo_import"]


def test_consent_is_refused_in_property_map() -> None:
    with pytest.raises(ValueError, match="consent"):
        JobRun(export_config(property_map={"x": "subscriptions"}), job_id="kl_refused")


def test_connection_test_sends_key_and_revision(env: KlaviyoSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message = KlaviyoHook().test_connection()
    assert ok, message
    assert env.revisions == {"2024-10-15"}
    monkeypatch.setenv(
        "AIRFLOW_CONN_KLAVIYO_DEFAULT", json.dumps({**env.connection(), "password": "pk_wrong"})
    )
    ok, message = KlaviyoHook().test_connection()
    assert not ok and "refused the credentials" in message and "pk_wrong" not in message


def test_export_imports_profiles_into_the_list_in_bulk_jobs(
    env: KlaviyoSandbox, lytics: LyticsSandbox
) -> None:
    xcoms = JobRun(export_config(), job_id="kl_export").run()
    list_id = env.data.list_by_name("Lytics KL")
    expected = valid_emails(lytics)
    assert env.data.list_emails(list_id) == expected
    member = next(m for m in lytics.expected_members(SLUG) if (m.get("email") or "").lower() in expected)
    assert env.data.profiles[env.data.by_email[member["email"].lower()]]["first_name"] == member["first_name"]
    jobs = -(-len(expected) // 120)
    assert env.calls_to("jobs_create") == jobs == xcoms["deliver"]["bulk_import_jobs"]
    rejects = [json.loads(line) for line in Path(xcoms["deliver"]["rejects_file"]).read_text().splitlines()]
    assert len(rejects) == SIZE - len(expected) and all("email" in r["reason"] for r in rejects)


def test_churn_removes_only_exits_the_job_added_without_unsubscribing(
    env: KlaviyoSandbox, lytics: LyticsSandbox
) -> None:
    JobRun(export_config(), job_id="kl_churn").run()
    list_id = env.data.list_by_name("Lytics KL")
    outsider = env.data.upsert({"email": "outsider@example.org"})
    env.data.members[list_id].add(outsider)
    lytics.account.set_churn(SLUG, exits=8, enters=5, changes=0)
    lytics.set_version(SLUG, 1)
    env.reset_counters()
    report = JobRun(export_config(), job_id="kl_churn", day=24).run()["report"]
    assert (report["enters"], report["exits"]) == (5, 8)
    assert env.data.list_emails(list_id) == valid_emails(lytics) | {"outsider@example.org"}
    assert env.calls_to("list_remove") == 1 and env.calls_to("jobs_create") == 1


def test_retry_waits_for_the_job_it_started(env: KlaviyoSandbox, lytics: LyticsSandbox) -> None:
    run = JobRun(export_config(batch_size=1000), job_id="kl_retry")
    run.run(until="scan")
    env.faults.add(
        "5xx", status=503, path_regex=r"/api/profile-bulk-import-jobs/[^/]+$", method="GET", times=None
    )
    with pytest.raises(Exception):  # noqa: B017 - the attempt fails on any error
        run.run()
    env.faults.clear()
    run.run()
    assert env.calls_to("jobs_create") == 1, "the retry reattached to the job"
    assert env.data.list_emails(env.data.list_by_name("Lytics KL")) == valid_emails(lytics)


def test_wrong_key_fails_fast(env: KlaviyoSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_KLAVIYO_DEFAULT", json.dumps({**env.connection(), "password": "pk_bad_1"})
    )
    run = JobRun(export_config(), job_id="kl_bad")
    run.run(until="scan")
    with pytest.raises(AirflowFailException) as failure:
        run.run()
    assert "pk_bad_1" not in str(failure.value) and env.data.jobs == {}


def test_a_429_retry_after_pauses_the_connection(env: KlaviyoSandbox) -> None:
    env.faults.add("429", path_regex=r"/api/lists", retry_after=1, times=1)
    hook = KlaviyoHook()
    hook.check_call()  # waits the second Retry-After asks for, then succeeds
    assert env.calls_to("lists") == 2
    assert hook.ledger is not None and hook.ledger.usage().paused_until > 0


def test_import_reads_users_and_activity_then_only_changes(
    env: KlaviyoSandbox, lytics: LyticsSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(250):
        env.data.upsert({"email": f"p{i}@example.com", "first_name": f"P{i}", "properties": {"tier": "gold"}})
    for i in range(450):
        env.data.add_event(
            ("Opened Email", "Clicked Email")[i % 2], f"p{i % 250}@example.com", 1_800_000_000_000 + i
        )
    monkeypatch.setattr("time.time", lambda: 1_900_000_000.0)
    report = JobRun({"type": "klaviyo_import"}, job_id="kl_import").run()["import"]
    users = lytics.collected("klaviyo_users")
    assert {u["email"] for u in users} == {f"p{i}@example.com" for i in range(250)}
    assert {"klaviyo_id", "first_name", "klaviyo_tier"} <= set(users[0])
    events = lytics.collected("klaviyo_activity")
    assert (
        len(events) == 450 and events[0]["event"] == "Opened Email" and events[0]["email"] == "p0@example.com"
    )
    assert report["users"]["read"] == 250 and env.calls_to("profiles") == 3
    lytics.clear_collected()
    env.data.upsert({"email": "p3@example.com", "first_name": "Three"})
    monkeypatch.setattr("time.time", lambda: 1_900_000_100.0)
    JobRun({"type": "klaviyo_import"}, job_id="kl_import", day=24).run()
    assert [u["email"] for u in lytics.collected("klaviyo_users")] == ["p3@example.com"]
    assert lytics.collected("klaviyo_activity") == []


def test_import_resumes_after_the_last_page_lytics_accepted(
    env: KlaviyoSandbox, lytics: LyticsSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(1000):
        env.data.add_event("Opened Email", f"p{i % 10}@example.com", 1_800_000_000_000 + i)
    monkeypatch.setattr("time.time", lambda: 1_900_000_000.0)
    run = JobRun({"type": "klaviyo_import", "import_users": False}, job_id="kl_resume")
    lytics.faults.add("5xx", status=500, path_regex=r"/collect/json/klaviyo_activity", after=2, times=None)
    with pytest.raises(Exception):  # noqa: B017 - the attempt fails on any error
        run.run()
    lytics.faults.clear()
    assert len(lytics.collected("klaviyo_activity")) == 400
    run.run()
    events = lytics.collected("klaviyo_activity")
    assert len(events) == 1000 and len({e["event_id"] for e in events}) == 1000


def test_two_tasks_on_one_connection_stay_within_the_burst_limit(
    env: KlaviyoSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stand-in enforces 10/s and 150/m; two hooks (two tasks) sharing a budget of 7 a second get
    no 429 (two budgets of 7 would send 14 in the first second and meet one). The 3 calls of margin
    absorb the scheduling delays of a busy machine between a call leaving and arriving."""
    env.enforce_limits = True
    monkeypatch.setenv("AIRFLOW_CONN_KLAVIYO_DEFAULT", json.dumps(env.connection(calls_per_second=7)))
    first, second = KlaviyoHook(), KlaviyoHook()
    for _ in range(12):
        first.check_call()
        second.check_call()
    assert env.refused == 0 and env.limits["M"].accepted == 24
    assert env.limits["M"].peak(1.0) <= 10
