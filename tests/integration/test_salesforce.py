"""Salesforce against its HTTPS stand-in (``lytics_sandbox.salesforce``, which follows the Bulk API 2.0
Developer Guide, https://developer.salesforce.com/docs/platform/api-asynch/guide/): the login, the
Bulk API 2.0 ingest export (rejects from ``sf__Error``, a retry reconnecting to the job it started,
field checks), the daily API budget (``Sforce-Limit-Info``, ``REQUEST_LIMIT_EXCEEDED``), and the
query-job imports (``Sforce-Locator`` pages, ``SystemModstamp`` watermark committed after Lytics
accepted). Stand-ins start once per module."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.salesforce import ApiLimitReached, SalesforceBulkHook
from lytics_provider.integrations.catalog import read_integration, todo_entries
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.pipeline import http
from lytics_provider.pipeline.http import ServiceError
from lytics_provider.pipeline.workarea import JobState
from lytics_provider.transfers.lytics_to_salesforce import SalesforceConfigError
from lytics_provider.transfers.salesforce_to_lytics import WATERMARKS
from lytics_sandbox.lytics import LyticsSandbox
from lytics_sandbox.salesforce import SalesforceSandbox, SObject
from lytics_sandbox.synth import SyntheticAccount
from tests.conformance.runner import JobRun
from tests.helpers import lytics_conn

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "include" / "jobs").glob("salesforce_*.yaml"))
DECLARATION = REPO / "lytics_provider" / "integrations" / "salesforce.yaml"
AUDIENCE = "sf_members"


@pytest.fixture(scope="module")
def stand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SalesforceSandbox]:
    with SalesforceSandbox(tmp_path_factory.mktemp("sf_tls")) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def lytics() -> Iterator[LyticsSandbox]:
    account = SyntheticAccount(seed=5, audiences={AUDIENCE: 60}, invalid_email_rate=0.1)
    with LyticsSandbox(account) as sandbox:
        yield sandbox


@pytest.fixture
def env(
    stand: SalesforceSandbox, lytics: LyticsSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[SalesforceSandbox]:
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(stand.ca_file))
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps(stand.connection()))
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics.base_url))
    monkeypatch.setattr(http.RetryPolicy, "backoff", lambda self, attempt: 0.0)
    saved = (stand.password, stand.daily_limit, stand.api_requests, stand.objects)
    stand.objects = {**stand.objects, "Member__c": member_object()}
    stand.api_requests = 0
    stand.reset_counters()
    yield stand
    stand.password, stand.daily_limit, stand.api_requests, stand.objects = saved
    stand.faults.clear()


def member_object() -> SObject:
    return SObject(
        "Member__c",
        {
            "Id": "id",
            "CreatedDate": "datetime",
            "SystemModstamp": "datetime",
            "Lytics_UID__c": "string",
            "Email__c": "email",
            "In_Audience__c": "boolean",
        },
        external_ids=("Lytics_UID__c",),
    )


def export_config(**changes: Any) -> dict[str, Any]:
    return {
        "type": "salesforce_export",
        "audience": AUDIENCE,
        "salesforce_object": "Member__c",
        "external_id_field": "Lytics_UID__c",
        "mapping": {"email": "Email__c"},
        "membership_field": "In_Audience__c",
        "batch_bytes": 1024,
        "poll_interval": 0.01,
        **changes,
    }


# -- registration and configs -----------------------------------------------------------------------


def test_registration_is_complete() -> None:
    assert todo_entries(read_integration(DECLARATION)) == []


def test_example_configs_load() -> None:
    jobs, errors = load_job_files(EXAMPLES)
    assert errors == []
    assert sorted(job.config.type for job in jobs) == [
        "salesforce_custom_object_import",
        "salesforce_export",
        "salesforce_import",
    ]


# -- login and Test button --------------------------------------------------------------------------


def test_hook_logs_in_and_the_test_names_a_refused_login(env: SalesforceSandbox) -> None:
    ok, message = SalesforceBulkHook().test_connection()
    assert ok and message.startswith(f"Connected to Salesforce at 127.0.0.1:{env.port}"), message
    env.password = "rotated-password"
    ok, message = SalesforceBulkHook().test_connection()
    assert not ok and "refused the login" in message and "authentication failure" in message
    assert "sandbox-password" not in message and "rotated-password" not in message


# -- export ----------------------------------------------------------------------------------------


def test_export_upserts_members_rejects_sf_errors_and_reconnects_on_retry(
    env: SalesforceSandbox, lytics: LyticsSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    members = list(lytics.expected_members(AUDIENCE))
    valid = {m["_uid"] for m in members if "@" in (m.get("email") or "")}
    invalid = {m["_uid"] for m in members} - valid
    assert valid and invalid
    run = JobRun(export_config(), job_id="sf_export")
    run.run(until="scan")
    real_wait = SalesforceBulkHook.wait
    waits: list[str] = []

    def dies_after_the_second_upload(self: SalesforceBulkHook, job_id: str, *args: Any) -> Any:
        waits.append(job_id)
        if len(waits) == 2:
            raise ServiceError("worker lost while the job ran")
        return real_wait(self, job_id, *args)

    monkeypatch.setattr(SalesforceBulkHook, "wait", dies_after_the_second_upload)
    with pytest.raises(ServiceError):
        run.run()
    created_before = env.calls_to("ingest_create")
    run.run()
    assert waits[2] == waits[1], "the retry waited for the job the failed try started"
    files = len(run.xcoms["deliver"]["bulk_jobs"])
    assert created_before == 2 and env.calls_to("ingest_create") == files == 4
    records = env.objects["Member__c"].records.values()
    assert {r["Lytics_UID__c"] for r in records} == valid
    assert all(r["In_Audience__c"] == "true" for r in records)
    report = run.xcoms["deliver"]
    assert report["outcomes"]["add:Created"] == len(valid)
    rejects = [json.loads(line) for line in Path(report["rejects_file"]).read_text().splitlines()]
    assert {r["uid"] for r in rejects} == invalid
    assert all("INVALID_EMAIL_ADDRESS" in r["reason"] for r in rejects)


def test_export_names_a_field_the_object_lacks(env: SalesforceSandbox) -> None:
    run = JobRun(export_config(mapping={"email": "Emial__c"}), job_id="sf_bad_field")
    run.run(until="scan")
    with pytest.raises(SalesforceConfigError, match="'Emial__c', which Salesforce object 'Member__c'"):
        run.run()
    assert env.calls_to("ingest_create") == 0


def test_export_refuses_a_key_that_is_not_an_external_id(env: SalesforceSandbox) -> None:
    run = JobRun(export_config(external_id_field="Email__c"), job_id="sf_bad_key")
    run.run(until="scan")
    with pytest.raises(AirflowFailException, match=r"External ID fields: \['Lytics_UID__c'\]"):
        run.run()


# -- daily API budget -------------------------------------------------------------------------------


def test_budget_stops_before_the_daily_share_is_spent(env: SalesforceSandbox) -> None:
    hook = SalesforceBulkHook(daily_api_calls=2)
    hook.describe("Member__c")
    hook.describe("Member__c")
    served = env.api_requests
    with pytest.raises(ApiLimitReached, match="daily Salesforce API allocation"):
        hook.describe("Member__c")
    assert env.api_requests == served, "the third call was never sent"
    assert hook.api_usage == (served, env.daily_limit)


def test_org_usage_at_its_total_pauses_the_budget(env: SalesforceSandbox) -> None:
    env.daily_limit = env.api_requests + 1
    hook = SalesforceBulkHook()
    hook.describe("Member__c")
    assert hook.api_usage == (env.daily_limit, env.daily_limit)
    with pytest.raises(ApiLimitReached):
        hook.describe("Member__c")
    assert env.api_requests == env.daily_limit, "nothing sent once Sforce-Limit-Info said the org is spent"


def test_request_limit_exceeded_pauses_every_task_of_the_connection(env: SalesforceSandbox) -> None:
    env.daily_limit = 50
    env.api_requests = 50  # other integrations spent the org's requests
    hook = SalesforceBulkHook()
    with pytest.raises(ApiLimitReached, match="REQUEST_LIMIT_EXCEEDED") as failure:
        hook.describe("Member__c")
    assert not isinstance(failure.value, AirflowFailException), "a retry after the pause may succeed"
    served = env.api_requests
    with pytest.raises(ApiLimitReached):
        SalesforceBulkHook().describe("Member__c")
    assert env.api_requests == served, "the paused budget sent nothing"


# -- imports ---------------------------------------------------------------------------------------


def seed_crm(env: SalesforceSandbox) -> None:
    for name in ("Account", "Contact", "Lead", "Opportunity"):
        env.objects[name] = SObject(
            name,
            env.objects[name].fields,
            env.objects[name].external_ids,
            env.objects[name].required,
            prefix=env.objects[name].prefix,
        )
    env.add_records("Account", [{"Name": f"Acme {i}"} for i in range(3)])
    env.add_records("Contact", [{"LastName": f"C{i}", "Email": f"c{i}@example.com"} for i in range(4)])
    env.add_records(
        "Lead",
        [
            {"LastName": f"L{i}", "Company": "X", "Email": f"l{i}@example.com", "Lytics_Score__c": str(i)}
            for i in range(7)
        ],
    )
    env.add_records("Opportunity", [{"Name": "Deal", "StageName": "Prospecting", "Amount": "10"}])


def test_import_reads_pages_into_the_four_streams_then_only_what_changed(
    env: SalesforceSandbox, lytics: LyticsSandbox
) -> None:
    seed_crm(env)
    before = {s: len(lytics.collected(s)) for s in ("salesforce_accounts", "salesforce_leads")}
    config = {"type": "salesforce_import", "page_size": 2, "poll_interval": 0.01}
    report = JobRun(config, job_id="sf_import").run()["import"]
    assert {o: r["records"] for o, r in report["objects"].items()} == {
        "Account": 3,
        "Contact": 4,
        "Lead": 7,
        "Opportunity": 1,
    }
    assert env.calls_to("query_results") >= 4 + 2  # Lead: 4 pages of 2 by Sforce-Locator
    leads = lytics.collected("salesforce_leads")[before["salesforce_leads"] :]
    assert len(leads) == 7 and "Lytics_Score__c" in leads[0], "custom fields are imported"
    marks = JobState("sf_import").get(WATERMARKS)
    assert set(marks) == {"Account", "Contact", "Lead", "Opportunity"}

    lead_id = next(iter(env.objects["Lead"].records))
    env.touch("Lead", lead_id, Status="Working")
    again = JobRun(config, job_id="sf_import", day=24).run()["import"]
    assert {o: r["records"] for o, r in again["objects"].items()} == {
        "Account": 0,
        "Contact": 0,
        "Lead": 1,
        "Opportunity": 0,
    }
    newest = lytics.collected("salesforce_leads")[-1]
    assert newest["Id"] == lead_id and newest["Status"] == "Working"
    assert len(lytics.collected("salesforce_accounts")) == before["salesforce_accounts"] + 3


def test_import_commits_the_watermark_only_after_lytics_accepted(
    env: SalesforceSandbox, lytics: LyticsSandbox
) -> None:
    env.objects["Member__c"].records.clear()
    env.add_records(
        "Member__c", [{"Lytics_UID__c": f"u{i}", "Email__c": f"m{i}@example.com"} for i in range(5)]
    )
    config = {
        "type": "salesforce_custom_object_import",
        "salesforce_object": "Member__c",
        "fields": ["Lytics_UID__c", "Email__c"],
        "stream": "sf_members_stream",
        "page_size": 2,
        "poll_interval": 0.01,
    }
    start = len(lytics.collected("sf_members_stream"))
    run = JobRun(config, job_id="sf_custom")
    lytics.faults.add("5xx", status=503, path_regex=r"/collect/json/sf_members_stream", after=1, times=None)
    try:
        with pytest.raises(ServiceError):
            run.run()
    finally:
        lytics.faults.clear()
    assert JobState("sf_custom").get(WATERMARKS) is None
    queries = env.calls_to("query_create")
    run.run()
    assert env.calls_to("query_create") == queries, "the retry read the query job it started"
    got = [r["Lytics_UID__c"] for r in lytics.collected("sf_members_stream")[start:]]
    assert sorted(got) == [f"u{i}" for i in range(5)], "every record once"
    assert JobState("sf_custom").get(WATERMARKS)["Member__c"]["ts"]
    assert set(lytics.collected("sf_members_stream")[start]) == {
        "Id",
        "SystemModstamp",
        "Lytics_UID__c",
        "Email__c",
    }
