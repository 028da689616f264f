"""Salesforce Marketing Cloud Import Subscriber and Activity against the Marketing Cloud stand-in
(``lytics_sandbox.sfmc``: SOAP ``Retrieve`` with date filters and ``ContinueRequest`` paging, as
Salesforce publishes them) and the Lytics stand-in.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

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

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2027, 1, 1, tzinfo=UTC)
NOW = (START + timedelta(days=30)).timestamp()
EVENTS = ("SentEvent", "OpenEvent", "ClickEvent", "BounceEvent", "UnsubEvent")


@pytest.fixture(scope="module")
def sfmc_server() -> Iterator[SfmcSandbox]:
    with SfmcSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def lytics_account() -> SyntheticAccount:
    return SyntheticAccount(seed=5, audiences={"all": 10})


@pytest.fixture
def sfmc(
    sfmc_server: SfmcSandbox,
    lytics: LyticsSandbox,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> SfmcSandbox:
    sfmc_server.reset()
    sfmc_server.retrieve_limit = 100
    monkeypatch.setenv("AIRFLOW_CONN_SFMC_DEFAULT", json.dumps(sfmc_server.connection()))
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(http.RetryPolicy, "backoff", lambda self, attempt: 0.0)
    monkeypatch.setattr("time.time", lambda: NOW)
    return sfmc_server


def fill(sfmc: SfmcSandbox, subscribers: int = 250, events: int = 120) -> None:
    """Subscribers created a minute apart, and ``events`` of each tracking object type."""
    for i in range(subscribers):
        sfmc.data.add_subscriber(f"sk{i}", f"P{i}@Example.com", START + timedelta(minutes=i))
    for object_type in EVENTS:
        for i in range(events):
            extra = {"URL": f"https://example.com/{i}"} if object_type == "ClickEvent" else {}
            if object_type == "BounceEvent":
                extra = {"BounceCategory": "Hard bounce", "SMTPCode": "550"}
            sfmc.data.add_event(
                object_type, f"sk{i % max(subscribers, 1)}", START + timedelta(seconds=i), 7, **extra
            )


def test_retrieve_pages_follow_continue_request(sfmc: SfmcSandbox) -> None:
    fill(sfmc, subscribers=0, events=250)
    where = date_window("EventDate", "2027-01-01T00:00:00Z", "2027-01-01T00:03:00Z")
    pages = list(SfmcHook().retrieve_pages("SentEvent", ["SubscriberKey", "EventDate"], where))
    assert [len(results) for results, _ in pages] == [100, 80]  # events 0..179 s
    assert pages[0][1] and pages[-1][1] is None
    first = pages[0][0][0]
    assert (
        first["SubscriberKey"] == "sk0"
        and server_time_to_utc(first["EventDate"]) == "2027-01-01T00:00:00.000Z"
    )
    assert sfmc.calls_to("soap") == 2


def test_an_unknown_property_fails_with_marketing_clouds_status(sfmc: SfmcSandbox) -> None:
    where = date_window("EventDate", "2027-01-01T00:00:00Z", "2027-01-02T00:00:00Z")
    with pytest.raises(http.PermanentServiceError, match="do not match with the fields of BounceEvent"):
        list(SfmcHook().retrieve_pages("BounceEvent", ["EventDate", "Nickname"], where))


def test_an_expired_token_is_written_into_a_new_envelope(sfmc: SfmcSandbox) -> None:
    fill(sfmc, subscribers=5, events=0)
    hook = SfmcHook()
    where = date_window("CreatedDate", "2027-01-01T00:00:00Z", "2027-01-02T00:00:00Z")
    list(hook.retrieve_pages("Subscriber", ["SubscriberKey"], where))
    sfmc.tokens.clear()
    [(results, _)] = list(hook.retrieve_pages("Subscriber", ["SubscriberKey"], where))
    assert len(results) == 5 and sfmc.tokens_issued == 2


def test_envelope_names_the_filter_types_in_the_partner_namespace(sfmc: SfmcSandbox) -> None:
    bodies: list[bytes] = []
    count_bodies(sfmc, "soap", lambda request: bodies.append(request.body) or 1)
    where = date_window("EventDate", "2027-01-01T00:00:00Z", "2027-01-02T00:00:00Z")
    list(SfmcHook().retrieve_pages("OpenEvent", ["EventDate"], where))
    names = {e.tag for e in ET.fromstring(bodies[0]).iter()}
    assert "{http://exacttarget.com/wsdl/partnerAPI}RetrieveRequestMsg" in names
    # xsi:type values resolve against the default namespace: the partner API's
    assert b'xmlns="http://exacttarget.com/wsdl/partnerAPI"' in bodies[0]
    assert b'xsi:type="ComplexFilterPart"' in bodies[0]
    assert b"<DateValue>2027-01-01T00:00:00Z</DateValue>" in bodies[0]


def test_first_run_sends_every_record_then_only_changes(sfmc: SfmcSandbox, lytics: LyticsSandbox) -> None:
    fill(sfmc)
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
    sfmc.data.unsubscribe("sk3", later)
    sfmc.data.add_subscriber("new", "new@example.com", later)
    sfmc.data.add_event("OpenEvent", "sk3", later)
    JobRun({"type": "sfmc_import"}, "sfmc_import", day=24).run()  # before the changes: nothing new
    assert lytics.collected("sfmc_subscribers") == [] and lytics.collected("sfmc_events") == []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("time.time", lambda: NOW + 3600)
        JobRun({"type": "sfmc_import"}, "sfmc_import", day=25).run()
    changed = {s["subscriber_key"]: s for s in lytics.collected("sfmc_subscribers")}
    assert set(changed) == {"sk3", "new"} and changed["sk3"]["status"] == "Unsubscribed"
    assert [(e["event"], e["subscriber_key"]) for e in lytics.collected("sfmc_events")] == [("open", "sk3")]


def test_a_retry_after_lytics_failed_midway_sends_each_record_once(
    sfmc: SfmcSandbox, lytics: LyticsSandbox
) -> None:
    fill(sfmc, subscribers=20, events=450)
    run = JobRun({"type": "sfmc_import", "import_subscribers": False}, "sfmc_resume")
    lytics.faults.add("5xx", status=500, path_regex=r"/collect/json/sfmc_events", after=7, times=None)
    with pytest.raises(Exception):  # noqa: B017 - the attempt fails on any error
        run.run()
    lytics.faults.clear()
    assert 0 < len(lytics.collected("sfmc_events")) < 5 * 450
    run.run()
    events = lytics.collected("sfmc_events")
    assert len(events) == 5 * 450 == len({e["event_id"] for e in events})


def test_a_dry_run_sends_nothing_and_moves_no_watermark(sfmc: SfmcSandbox, lytics: LyticsSandbox) -> None:
    fill(sfmc, subscribers=30, events=10)
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
