"""Salesforce Marketing Cloud: the hook (token, instance URL, renewal, Test button), the exports and
Import Subscriber and Activity (SOAP ``Retrieve`` with date filters and ``ContinueRequest`` paging)
against the stand-in (``lytics_sandbox.sfmc``), which follows Salesforce's published Marketing Cloud
REST and SOAP reference (https://developer.salesforce.com/docs/marketing/marketing-cloud/guide/apis-overview.html).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.sfmc import SfmcHook, date_window, server_time_to_utc
from lytics_provider.jobs.dag_builder import build_dag
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.jobs.types.sfmc import SfmcImportJob
from lytics_provider.pipeline import http
from lytics_sandbox.lytics import LyticsSandbox
from lytics_sandbox.sfmc import SfmcSandbox
from lytics_sandbox.synth import SyntheticAccount
from tests.conformance.destinations import count_bodies
from tests.conformance.runner import JobRun
from tests.helpers import audience_emails, serve_connection

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
    serve_connection(monkeypatch, tmp_path, "sfmc_default", sfmc_server.connection())
    return sfmc_server


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
    valid, invalid = audience_emails(lytics, "vip")
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
    assert {k[0] for k in de.rows} == audience_emails(lytics, "vip")[0]
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
    assert {e["ContactKey"] for e in events} == audience_emails(lytics, "vip")[0]
    assert len(events) == len(audience_emails(lytics, "vip")[0]) == sfmc.calls_to("event")
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
    assert len(sfmc.data.journey_events) == len(audience_emails(lytics, "vip")[0])


def test_example_configs_load() -> None:
    loaded, errors = load_job_files(sorted((ROOT / "include" / "jobs").glob("sfmc_*.yaml")))
    assert errors == []
    assert {job.config.type for job in loaded} == {
        "sfmc_export_data_extension",
        "sfmc_export_lists",
        "sfmc_export_new_data_extension",
        "sfmc_import",
        "sfmc_trigger_journey",
    }


START = datetime(2027, 1, 1, tzinfo=UTC)
NOW = (START + timedelta(days=30)).timestamp()
EVENTS = ("SentEvent", "OpenEvent", "ClickEvent", "BounceEvent", "UnsubEvent")


# -- Import Subscriber and Activity ---------------------------------------------------------------
@pytest.fixture
def importing(sfmc: SfmcSandbox, monkeypatch: pytest.MonkeyPatch) -> SfmcSandbox:
    """The stand-in answering 100 results a Retrieve call, read at a fixed clock."""
    sfmc.retrieve_limit = 100
    monkeypatch.setattr("time.time", lambda: NOW)
    return sfmc


def fill(importing: SfmcSandbox, subscribers: int = 250, events: int = 120) -> None:
    """Subscribers created a minute apart, and ``events`` of each tracking object type."""
    for i in range(subscribers):
        importing.data.add_subscriber(f"sk{i}", f"P{i}@Example.com", START + timedelta(minutes=i))
    for object_type in EVENTS:
        for i in range(events):
            extra = {"URL": f"https://example.com/{i}"} if object_type == "ClickEvent" else {}
            if object_type == "BounceEvent":
                extra = {"BounceCategory": "Hard bounce", "SMTPCode": "550"}
            importing.data.add_event(
                object_type, f"sk{i % max(subscribers, 1)}", START + timedelta(seconds=i), 7, **extra
            )


def test_retrieve_pages_follow_continue_request(importing: SfmcSandbox) -> None:
    fill(importing, subscribers=0, events=250)
    where = date_window("EventDate", "2027-01-01T00:00:00Z", "2027-01-01T00:03:00Z")
    pages = list(SfmcHook().retrieve_pages("SentEvent", ["SubscriberKey", "EventDate"], where))
    assert [len(results) for results, _ in pages] == [100, 80]  # events 0..179 s
    assert pages[0][1] and pages[-1][1] is None
    first = pages[0][0][0]
    assert (
        first["SubscriberKey"] == "sk0"
        and server_time_to_utc(first["EventDate"]) == "2027-01-01T00:00:00.000Z"
    )
    assert importing.calls_to("soap") == 2


def test_an_unknown_property_fails_with_marketing_clouds_status(importing: SfmcSandbox) -> None:
    where = date_window("EventDate", "2027-01-01T00:00:00Z", "2027-01-02T00:00:00Z")
    with pytest.raises(http.PermanentServiceError, match="do not match with the fields of BounceEvent"):
        list(SfmcHook().retrieve_pages("BounceEvent", ["EventDate", "Nickname"], where))


def test_an_expired_token_is_written_into_a_new_envelope(importing: SfmcSandbox) -> None:
    fill(importing, subscribers=5, events=0)
    hook = SfmcHook()
    where = date_window("CreatedDate", "2027-01-01T00:00:00Z", "2027-01-02T00:00:00Z")
    list(hook.retrieve_pages("Subscriber", ["SubscriberKey"], where))
    importing.tokens.clear()
    [(results, _)] = list(hook.retrieve_pages("Subscriber", ["SubscriberKey"], where))
    assert len(results) == 5 and importing.tokens_issued == 2


def test_envelope_names_the_filter_types_in_the_partner_namespace(importing: SfmcSandbox) -> None:
    bodies: list[bytes] = []
    count_bodies(importing, "soap", lambda request: bodies.append(request.body) or 1)
    where = date_window("EventDate", "2027-01-01T00:00:00Z", "2027-01-02T00:00:00Z")
    list(SfmcHook().retrieve_pages("OpenEvent", ["EventDate"], where))
    names = {e.tag for e in ET.fromstring(bodies[0]).iter()}
    assert "{http://exacttarget.com/wsdl/partnerAPI}RetrieveRequestMsg" in names
    # xsi:type values resolve against the default namespace: the partner API's
    assert b'xmlns="http://exacttarget.com/wsdl/partnerAPI"' in bodies[0]
    assert b'xsi:type="ComplexFilterPart"' in bodies[0]
    assert b"<DateValue>2027-01-01T00:00:00Z</DateValue>" in bodies[0]


def test_first_run_sends_every_record_then_only_changes(
    importing: SfmcSandbox, lytics: LyticsSandbox
) -> None:
    fill(importing)
    report = JobRun({"type": "sfmc_import"}, "sfmc_import").run()["import"]
    subscribers = lytics.collected("sfmc_subscribers")
    assert {s["subscriber_key"] for s in subscribers} == {f"sk{i}" for i in range(250)}
    assert subscribers[0]["email"] == "p0@example.com" and subscribers[0]["created_date"].endswith("Z")
    assert subscribers[0]["created_date"] == "2027-01-01T00:00:00.000Z"
    events = lytics.collected("sfmc_events")
    assert len(events) == 5 * 120 == len({e["event_id"] for e in events})
    assert {e["event"] for e in events} == {"sent", "open", "click", "bounce", "unsubscribe"}
    click = next(e for e in events if e["event"] == "click")
    assert click["url"].startswith("https://example.com/") and click["send_id"] == "7"
    assert next(e for e in events if e["event"] == "bounce")["smtp_code"] == "550"
    assert report["subscribers"]["read"] == 250 and report["activity"]["OpenEvent"]["read"] == 120

    lytics.clear_collected()
    later = datetime.fromtimestamp(NOW, UTC) + timedelta(minutes=5)
    importing.data.unsubscribe("sk3", later)
    importing.data.add_subscriber("new", "new@example.com", later)
    importing.data.add_event("OpenEvent", "sk3", later)
    JobRun({"type": "sfmc_import"}, "sfmc_import", day=24).run()  # before the changes: nothing new
    assert lytics.collected("sfmc_subscribers") == [] and lytics.collected("sfmc_events") == []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("time.time", lambda: NOW + 3600)
        JobRun({"type": "sfmc_import"}, "sfmc_import", day=25).run()
    changed = {s["subscriber_key"]: s for s in lytics.collected("sfmc_subscribers")}
    assert set(changed) == {"sk3", "new"} and changed["sk3"]["status"] == "Unsubscribed"
    assert [(e["event"], e["subscriber_key"]) for e in lytics.collected("sfmc_events")] == [("open", "sk3")]


def test_a_retry_after_lytics_failed_midway_sends_each_record_once(
    importing: SfmcSandbox, lytics: LyticsSandbox
) -> None:
    fill(importing, subscribers=20, events=450)
    run = JobRun({"type": "sfmc_import", "import_subscribers": False}, "sfmc_resume")
    lytics.faults.add("5xx", status=500, path_regex=r"/collect/json/sfmc_events", after=7, times=None)
    with pytest.raises(Exception):  # noqa: B017 - the attempt fails on any error
        run.run()
    lytics.faults.clear()
    assert 0 < len(lytics.collected("sfmc_events")) < 5 * 450
    run.run()
    events = lytics.collected("sfmc_events")
    assert len(events) == 5 * 450 == len({e["event_id"] for e in events})


def test_a_dry_run_sends_nothing_and_moves_no_watermark(
    importing: SfmcSandbox, lytics: LyticsSandbox
) -> None:
    fill(importing, subscribers=30, events=10)
    report = JobRun({"type": "sfmc_import"}, "sfmc_dry", dry_run=True).run()["import"]
    assert report["dry_run"] and report["subscribers"]["read"] == 30
    assert lytics.collected("sfmc_subscribers") == [] and lytics.collected("sfmc_events") == []
    JobRun({"type": "sfmc_import"}, "sfmc_dry", day=24).run()
    assert len(lytics.collected("sfmc_subscribers")) == 30 and len(lytics.collected("sfmc_events")) == 50


def test_selecting_nothing_or_an_unknown_event_is_refused() -> None:
    with pytest.raises(ValueError, match="select subscribers, activity or both"):
        SfmcImportJob(type="sfmc_import", import_subscribers=False, import_activity=False)
    with pytest.raises(ValueError, match="event_types"):
        SfmcImportJob(type="sfmc_import", event_types=["PageViewEvent"])


def test_example_config_builds_its_dag() -> None:
    [loaded], errors = load_job_files([ROOT / "include" / "jobs" / "sfmc_import.yaml"])
    assert errors == []
    dag = build_dag(loaded, register=False)
    assert dag.task_ids == ["import"] and set(dag.params) >= {"dry_run", "full_refresh"}
