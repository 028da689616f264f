"""Marketo: the hook's token, error envelope and call budget, and Export Audiences, against the
stand-in (``lytics_sandbox.marketo``), which follows Adobe's published Marketo REST API
documentation (https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/rest-api).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.marketo import MarketoHook
from lytics_provider.jobs.loader import load_job_files
from lytics_sandbox.marketo import MarketoSandbox
from lytics_sandbox.synth import SyntheticAccount
from tests.conformance.runner import JobRun
from tests.helpers import audience_emails, serve_connection

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def marketo_server() -> Iterator[MarketoSandbox]:
    with MarketoSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def lytics_account() -> SyntheticAccount:
    return SyntheticAccount(seed=9, audiences={"all": 300, "vip": 120}, invalid_email_rate=0.05)


@pytest.fixture
def mkto(marketo_server: MarketoSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MarketoSandbox:
    marketo_server.reset()
    connection = {**marketo_server.connection(), "extra": {"window_seconds": 1, "calls_per_window": 10}}
    marketo_server.window, marketo_server.calls_per_window = 1.0, 10
    serve_connection(monkeypatch, tmp_path, "marketo_default", connection)
    return marketo_server


def test_test_button_and_refused_credentials(mkto: MarketoSandbox) -> None:
    ok, message = MarketoHook().test_connection()
    assert ok, message
    secret = mkto.client_secret
    mkto.client_secret = "rotated"
    ok, message = MarketoHook().test_connection()
    assert not ok and "refused the credentials" in message and secret not in message


def test_an_expired_token_602_is_renewed_and_the_call_sent_again(mkto: MarketoSandbox) -> None:
    hook = MarketoHook()
    hook.sync_leads([{"email": "a@example.com"}])
    mkto.expire_tokens()
    result = hook.sync_leads([{"email": "b@example.com", "firstName": "B"}])
    assert result[0]["status"] == "created"
    assert mkto.calls_to("token") == 2


def test_a_606_pauses_for_the_window_and_sends_again(mkto: MarketoSandbox) -> None:
    mkto.calls_per_window = 3  # the server's limit is lower than the connection's budget
    hook = MarketoHook()
    for n in range(6):
        hook.sync_leads([{"email": f"lead{n}@example.com"}])
    assert mkto.rate_limited >= 1 and hook.rate_limited == mkto.rate_limited
    assert len(mkto.data.leads) == 6


def test_the_daily_quota_607_fails_fast_naming_the_reset(mkto: MarketoSandbox) -> None:
    mkto.daily_quota = 0
    with pytest.raises(AirflowFailException, match="daily API quota"):
        MarketoHook().sync_leads([{"email": "a@example.com"}])


def test_export_leads_list_rejects_and_exits_without_lookups(mkto: MarketoSandbox, lytics: Any) -> None:
    list_id = mkto.data.add_list("VIP")
    config = {"type": "marketo_export", "audience": "vip", "static_list": "VIP", "batch_size": 50}
    report = JobRun(config, "mkto_vip").run()["report"]
    valid, invalid = audience_emails(lytics, "vip")
    assert invalid and mkto.data.list_emails(list_id) == valid
    assert report["delivery"]["rejected"] == len(invalid)
    assert mkto.rate_limited == 0  # 10 calls a second: the budget kept every call within it
    # a lead Marketo skips (an unknown lead field) is a reject with Marketo's reason
    mkto.data.fields.discard("lastName")
    lytics.account.set_churn("vip", exits=5, enters=5, changes=0)
    lytics.set_version("vip", 1)
    mkto.reset_counters()
    report = JobRun(config, "mkto_vip", day=24).run()["report"]
    assert mkto.calls_to("get_leads") == 0  # exits use the lead ids saved when the job added them
    assert report["exits"] == 5
    rejects = [json.loads(line) for line in Path(report["delivery"]["rejects_file"]).read_text().splitlines()]
    assert any("Field 'lastName' not found" in r["reason"] for r in rejects)


def test_an_unknown_static_list_names_the_lists(mkto: MarketoSandbox, lytics: Any) -> None:
    mkto.data.add_list("VIP")
    config = {"type": "marketo_export", "audience": "vip", "static_list": "Nope"}
    with pytest.raises(ValueError, match=r"'Nope' not found; lists: \d+ \(VIP\)"):
        JobRun(config, "mkto_nope").run()


def test_example_config_loads() -> None:
    loaded, errors = load_job_files([ROOT / "include" / "jobs" / "marketo_export.yaml"])
    assert errors == [] and loaded[0].config.type == "marketo_export"


# -- Import Audiences & Activity Data (Bulk Extract) -------------------------------------------
NOW = 1_900_000_000.0  # 2030-03-17T17:46:40Z
IMPORT = {"type": "marketo_import", "initial_since": "2030-02-01", "poll_interval": 0.01, "page_size": 5}


@pytest.fixture
def bulk(mkto: MarketoSandbox, monkeypatch: pytest.MonkeyPatch) -> MarketoSandbox:
    """The stand-in with 12 leads and 20 activities across the two 31-day spans before :data:`NOW`."""
    connection = {**mkto.connection(), "extra": {"window_seconds": 1, "calls_per_window": 100}}
    mkto.calls_per_window = 100
    monkeypatch.setenv("AIRFLOW_CONN_MARKETO_DEFAULT", json.dumps(connection))
    monkeypatch.setattr("time.time", lambda: NOW)
    for n in range(12):
        day = 2 + 3 * n  # February 2 to March 7
        created = f"2030-{2 + (day > 28):02d}-{(day - 1) % 28 + 1:02d}T10:00:00Z"
        lead_id = mkto.data.put_lead(f"Lead{n}@Example.com", created, firstName=f"F{n}", company="Acme")
        for k in range(n % 3 + 1):
            mkto.data.add_activity(
                lead_id, 2 + k, created.replace("T10", f"T1{k + 1}"), campaignId=7, score=k
            )
    assert len(mkto.data.activities) == 24
    return mkto


def imported(lytics: Any, stream: str) -> list[tuple[str, ...]]:
    rows = lytics.collected(stream)
    if stream == "mo_user":
        return sorted((r["email"], r["firstName"]) for r in rows)
    return sorted((r["marketoGUID"], r["leadId"]) for r in rows)


def test_import_sends_leads_and_activities_then_only_changes(
    bulk: MarketoSandbox, lytics: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = JobRun(IMPORT, "mkto_import").run()["import"]
    leads = bulk.data.leads.values()
    assert imported(lytics, "mo_user") == sorted((v["email"], v["firstName"]) for v in leads)
    activities = lytics.collected("mo_activity")
    assert sorted(a["marketoGUID"] for a in activities) == sorted(
        a["marketoGUID"] for a in bulk.data.activities
    )
    assert all(isinstance(a["attributes"], dict) and a["campaignId"] == "7" for a in activities)
    assert report["until"] == "2030-03-17T17:46:40Z" and report["leads"]["read"] == 12
    assert report["leads"]["export_bytes"] > 0 and report["activities"]["read"] == 24
    assert bulk.calls_to("export_create") == 4  # two 31-day spans per stream
    assert {j["field"] for j in bulk.exports.values() if j["kind"] == "leads"} == {"updatedAt"}

    lytics.clear_collected()
    later = "2030-03-17T18:00:00Z"
    bulk.data.put_lead("lead3@example.com", "2030-02-11T10:00:00Z", later, firstName="Three")
    guid = bulk.data.add_activity(4, 9, later)
    monkeypatch.setattr("time.time", lambda: NOW + 3600)
    JobRun(IMPORT, "mkto_import", day=24).run()
    assert imported(lytics, "mo_user") == [("lead3@example.com", "Three")]
    assert imported(lytics, "mo_activity") == [(guid, "4")]


def test_the_created_at_filter_leaves_updates_out(
    bulk: MarketoSandbox, lytics: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {**IMPORT, "import_activities": False, "lead_filter": "createdAt"}
    JobRun(config, "mkto_created").run()
    lytics.clear_collected()
    bulk.data.put_lead("lead3@example.com", "2030-02-11T10:00:00Z", "2030-03-17T18:00:00Z", firstName="Three")
    bulk.data.put_lead("new@example.com", "2030-03-17T18:00:00Z", firstName="New")
    monkeypatch.setattr("time.time", lambda: NOW + 3600)
    JobRun(config, "mkto_created", day=24).run()
    assert imported(lytics, "mo_user") == [("new@example.com", "New")]


def test_a_retry_after_lytics_failed_midway_sends_each_record_once(bulk: MarketoSandbox, lytics: Any) -> None:
    run = JobRun({**IMPORT, "import_leads": False}, "mkto_retry")
    lytics.faults.add("5xx", status=500, path_regex=r"/collect/json/mo_activity", after=3, times=None)
    with pytest.raises(Exception):  # noqa: B017 - the attempt fails on any error
        run.run()
    lytics.faults.clear()
    assert len(lytics.collected("mo_activity")) == 15
    created = bulk.calls_to("export_create")
    run.run()
    guids = [a["marketoGUID"] for a in lytics.collected("mo_activity")]
    assert len(guids) == 24 == len(set(guids))
    assert bulk.calls_to("export_create") == created + 1, "the saved span is read again, not extracted"


def test_a_retry_reattaches_to_the_job_it_started(bulk: MarketoSandbox, lytics: Any) -> None:
    run = JobRun({**IMPORT, "import_activities": False}, "mkto_reattach")
    bulk.faults.add("5xx", status=503, path_regex=r"/file\.json", times=None)
    with pytest.raises(Exception):  # noqa: B017 - the attempt fails on any error
        run.run()
    bulk.faults.clear()
    assert bulk.calls_to("export_create") == 1 and lytics.collected("mo_user") == []
    run.run()
    assert bulk.calls_to("export_create") == 2 and len(bulk.exports) == 2
    assert len(lytics.collected("mo_user")) == 12


def test_the_daily_export_quota_stops_the_job_and_the_next_run_continues(
    bulk: MarketoSandbox, lytics: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    bulk.export_quota = 1  # spent by the first span's file
    config = {**IMPORT, "import_activities": False}
    with pytest.raises(
        AirflowFailException, match=r"1029 Export daily quota .*500 MB by default.*after the reset"
    ):
        JobRun(config, "mkto_quota").run()
    assert len(lytics.collected("mo_user")) == 10  # the first span's leads (February 1 to March 4)
    bulk.exported = 0  # the quota resets; the next day's run begins at the second span
    monkeypatch.setattr("time.time", lambda: NOW + 86_400)
    report = JobRun(config, "mkto_quota", day=24).run()["import"]
    assert report["leads"]["since"] == "2030-03-04T00:00:00Z"
    emails = [r["email"] for r in lytics.collected("mo_user")]
    assert len(emails) == 12 == len(set(emails))


def test_an_account_without_the_updated_at_filter_is_told_to_use_created_at(bulk: MarketoSandbox) -> None:
    bulk.updated_at_filter = False
    with pytest.raises(AirflowFailException, match=r"1035 Unsupported filter type.*lead_filter: createdAt"):
        JobRun({**IMPORT, "import_activities": False}, "mkto_1035").run()


def test_a_dry_run_sends_nothing_and_moves_no_watermark(bulk: MarketoSandbox, lytics: Any) -> None:
    report = JobRun(IMPORT, "mkto_dry", dry_run=True).run()["import"]
    assert report["dry_run"] and report["leads"]["read"] == 12 and report["activities"]["read"] == 24
    assert lytics.collected("mo_user") == lytics.collected("mo_activity") == []
    JobRun({**IMPORT, "import_activities": False}, "mkto_dry", day=24).run()
    assert len(lytics.collected("mo_user")) == 12


def test_import_example_config_validates_and_builds_its_dag() -> None:
    loaded, errors = load_job_files([ROOT / "include" / "jobs" / "marketo_import.yaml"])
    assert errors == [] and loaded[0].config.type == "marketo_import"
    run = JobRun(loaded[0].config.model_dump(exclude_defaults=False), "marketo_import_example")
    assert run.dag.task_ids == ["import"]
    with pytest.raises(ValueError, match="import_leads and import_activities are both false"):
        JobRun({**IMPORT, "import_leads": False, "import_activities": False}, "mkto_none")
