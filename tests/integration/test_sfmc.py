"""Salesforce Marketing Cloud: the hook (token, instance URL, renewal, Test button) and the exports
against the stand-in (``lytics_sandbox.sfmc``), which follows Salesforce's published Marketing Cloud
REST and SOAP reference (https://developer.salesforce.com/docs/marketing/marketing-cloud/guide/apis-overview.html).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.sfmc import SfmcHook
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.pipeline import http
from lytics_sandbox.sfmc import SfmcSandbox
from lytics_sandbox.synth import SyntheticAccount
from tests.conformance.destinations import count_bodies
from tests.conformance.runner import JobRun

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sfmc_server() -> Iterator[SfmcSandbox]:
    with SfmcSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def lytics_account() -> SyntheticAccount:
    return SyntheticAccount(seed=5, audiences={"all": 300, "vip": 120}, invalid_email_rate=0.05)


@pytest.fixture
def sfmc(
    sfmc_server: SfmcSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, lytics: Any
) -> SfmcSandbox:
    sfmc_server.reset()
    monkeypatch.setenv("AIRFLOW_CONN_SFMC_DEFAULT", json.dumps(sfmc_server.connection()))
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(http.RetryPolicy, "backoff", lambda self, attempt: 0.0)
    return sfmc_server


def vip_emails(lytics: Any, valid: bool = True) -> set[str]:
    found = set()
    for member in lytics.expected_members("vip"):
        email = str(member.get("email") or "").lower()
        if ("@" in email and "." in email.split("@")[-1]) == valid:
            found.add(email)
    return found


def test_token_from_json_body_and_calls_on_the_rest_instance(sfmc: SfmcSandbox) -> None:
    hook = SfmcHook()
    ok, message = hook.test_connection()
    assert ok, message
    assert "REST instance" in message and sfmc.client_secret not in message
    assert sfmc.calls_to("token") == 1 and sfmc.calls_to("userinfo") == 1


def test_an_expired_token_is_renewed_once_and_the_call_sent_again(sfmc: SfmcSandbox) -> None:
    sfmc.data.add_data_extension("DE1", {"SubscriberKey": "Text"}, ["SubscriberKey"])
    hook = SfmcHook()
    hook.upsert_rows("DE1", [{"keys": {"SubscriberKey": "a"}, "values": {}}])
    sfmc.tokens.clear()  # every token the server gave out has expired
    hook.upsert_rows("DE1", [{"keys": {"SubscriberKey": "b"}, "values": {}}])
    assert sfmc.tokens_issued == 2
    assert set(sfmc.data.data_extension("DE1").rows) == {("a",), ("b",)}


def test_a_token_near_its_expiry_is_renewed_before_use(sfmc: SfmcSandbox) -> None:
    sfmc.token_lifetime = 30  # inside the renewal margin: every call fetches a new token first
    sfmc.data.add_data_extension("DE1", {"SubscriberKey": "Text"}, ["SubscriberKey"])
    hook = SfmcHook()
    for key in "abc":
        hook.upsert_rows("DE1", [{"keys": {"SubscriberKey": key}, "values": {}}])
    assert sfmc.tokens_issued == 4  # one when the client was built, then one before each call
    assert sfmc.calls_to("rowset") == 3  # no call was refused with a 401


def test_refused_credentials_fail_the_test_button_without_the_secret(sfmc: SfmcSandbox) -> None:
    secret = sfmc.client_secret
    sfmc.client_secret = "rotated"
    ok, message = SfmcHook().test_connection()
    assert not ok and "invalid_client" in message and secret not in message


def test_existing_data_extension_rows_in_rowsets_of_50_with_rejects(sfmc: SfmcSandbox, lytics: Any) -> None:
    sfmc.data.add_data_extension(
        "VIP", {"SubscriberKey": "Text", "Email": "EmailAddress", "FirstName": "Text"}, ["SubscriberKey"]
    )
    config = {
        "type": "sfmc_export_data_extension",
        "audience": "vip",
        "data_extension_key": "VIP",
        "subscriber_key_field": "_uid",
        "field_mapping": {"email": "Email", "first_name": "FirstName"},
    }
    sizes = count_bodies(sfmc, "rowset", lambda request: len(request.json()))
    report = JobRun(config, "sfmc_vip").run()["report"]
    de = sfmc.data.data_extension("VIP")
    valid, invalid = vip_emails(lytics), vip_emails(lytics, valid=False)
    assert invalid, "the synthetic audience holds invalid emails"
    assert {row["Email"] for row in de.rows.values()} == valid
    assert report["delivery"]["rejected"] == len(invalid)
    rejects = Path(report["delivery"]["rejects_file"]).read_text().splitlines()
    assert all("not a valid email" in json.loads(line)["reason"] for line in rejects)
    # accepted rowset calls hold at most 50 rows; refused ones were split to find their bad rows
    assert sum(sizes) == len(valid) and max(sizes) <= 50


def test_a_mapped_column_the_data_extension_lacks_fails_fast(sfmc: SfmcSandbox, lytics: Any) -> None:
    sfmc.data.add_data_extension("VIP", {"SubscriberKey": "EmailAddress"}, ["SubscriberKey"])
    config = {
        "type": "sfmc_export_data_extension",
        "audience": "vip",
        "data_extension_key": "VIP",
        "field_mapping": {"first_name": "Nickname"},
    }
    with pytest.raises(AirflowFailException, match="Nickname"):
        JobRun(config, "sfmc_bad_column").run()
    assert sfmc.calls_to("rowset") == 1


def test_new_data_extension_is_created_once_and_a_foreign_key_is_refused(
    sfmc: SfmcSandbox, lytics: Any
) -> None:
    config = {
        "type": "sfmc_export_new_data_extension",
        "audience": "vip",
        "data_extension_key": "Lytics_VIP",
        "field_mapping": {"first_name": "FirstName"},
    }
    JobRun(config, "sfmc_new").run()
    de = sfmc.data.data_extension("Lytics_VIP")
    assert de.columns == {"SubscriberKey": "EmailAddress", "FirstName": "Text"}
    assert {k[0] for k in de.rows} == vip_emails(lytics)
    JobRun(config, "sfmc_new", day=24).run()  # the job's own data extension: found again, nothing resent
    assert sfmc.calls_to("soap") == 2
    with pytest.raises(ValueError, match="did not create data extension 'Lytics_VIP'"):
        JobRun(config, "another_job").run()


def test_trigger_journey_sends_enters_only_with_mapped_data(sfmc: SfmcSandbox, lytics: Any) -> None:
    sfmc.data.event_definitions.add("APIEvent-1")
    config = {
        "type": "sfmc_trigger_journey",
        "audience": "vip",
        "event_definition_key": "APIEvent-1",
        "field_mapping": {"first_name": "FirstName"},
    }
    report = JobRun(config, "sfmc_journey").run()["report"]
    events = sfmc.data.journey_events
    assert {e["ContactKey"] for e in events} == vip_emails(lytics)
    assert len(events) == len(vip_emails(lytics)) == sfmc.calls_to("event")
    assert all(set(e["Data"]) <= {"FirstName"} for e in events)
    assert report["delivery"]["entry_events"] == len(events)


def test_an_unknown_event_definition_fails_fast(sfmc: SfmcSandbox, lytics: Any) -> None:
    config = {"type": "sfmc_trigger_journey", "audience": "vip", "event_definition_key": "missing"}
    with pytest.raises(AirflowFailException, match="not found"):
        JobRun(config, "sfmc_journey_missing").run()
    assert sfmc.data.journey_events == []


def test_a_429_waits_for_retry_after_and_sends_again(sfmc: SfmcSandbox, lytics: Any) -> None:
    sfmc.data.event_definitions.add("APIEvent-1")
    sfmc.faults.add("429", path_regex=r"/interaction/v1/events", retry_after=0, times=2)
    config = {"type": "sfmc_trigger_journey", "audience": "vip", "event_definition_key": "APIEvent-1"}
    JobRun(config, "sfmc_429").run()
    assert len(sfmc.data.journey_events) == len(vip_emails(lytics))


def test_example_configs_load() -> None:
    loaded, errors = load_job_files(sorted((ROOT / "include" / "jobs").glob("sfmc_*.yaml")))
    assert errors == []
    assert {job.config.type for job in loaded} == {
        "sfmc_export_data_extension",
        "sfmc_export_new_data_extension",
        "sfmc_import",
        "sfmc_trigger_journey",
    }
