"""Azure Event Hub export against the HTTPS stand-in: SAS signatures, batches within 1 MB, a
killed delivery retried sends every event once, throttling retried, permanent errors fail fast."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.azure_event_hub import (
    MAX_BATCH_BYTES,
    AzureEventHubHook,
    EventHubConnectionString,
    EventHubEventDestination,
    sas_token,
)
from lytics_provider.integrations.catalog import read_integration, todo_entries
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.pipeline.http import ServiceError
from lytics_provider.sync.events import AudienceEvent
from lytics_sandbox.azure_event_hub import AccessRule, EventHub, EventHubSandbox
from lytics_sandbox.tls import local_tls
from tests.conformance.runner import JobRun
from tests.integration.conftest_warehouse import lytics_env  # noqa: F401 - fixture

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "include" / "jobs" / "azure_event_hub_export_audience.yaml"
DECLARATION = REPO / "lytics_provider" / "integrations" / "azure_event_hub.yaml"
SEND_KEY = "c2VuZC1rZXktZm9yLXRlc3Rz"


@pytest.fixture(scope="session")
def event_hub_stand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventHubSandbox]:
    tls = local_tls(tmp_path_factory.mktemp("event_hub_tls"))
    rules = {"send": AccessRule(SEND_KEY), "listen": AccessRule("bGlzdGVuLW9ubHk=", frozenset({"Listen"}))}
    stand = EventHubSandbox(rules=rules)
    stand.serve_tls(tls)
    with stand:
        yield stand


@pytest.fixture
def lytics(lytics_env: Any) -> Any:  # noqa: F811 - the fixture imported above
    """The Lytics stand-in with its connection and a private data directory."""
    return lytics_env


@pytest.fixture
def hub(event_hub_stand: EventHubSandbox, lytics: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh event hub, the stand-in's CA trusted, the connection pointing at it."""
    name = f"hub-{uuid.uuid4().hex[:8]}"
    event_hub_stand.hubs[name] = EventHub()
    event_hub_stand.faults.clear()
    event_hub_stand.reset_counters()
    event_hub_stand.batches.clear()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(event_hub_stand.ca_file))
    monkeypatch.setenv("AIRFLOW_CONN_AZURE_EVENT_HUB_DEFAULT", connection(event_hub_stand, "send"))
    return name


def connection(stand: EventHubSandbox, rule: str, hub: str | None = None) -> str:
    return json.dumps({"conn_type": "azure_event_hub", "password": stand.connection_string(rule, hub)})


def config(hub: str, **extra: Any) -> dict[str, Any]:
    return {"type": "azure_event_hub_export", "audience": "high_value", "event_hub": hub, **extra}


def bodies(stand: EventHubSandbox, hub: str) -> list[dict[str, Any]]:
    return [json.loads(e["Body"]) for e in stand.events(hub)]


def test_registration_and_example() -> None:
    assert todo_entries(read_integration(DECLARATION)) == []
    jobs, errors = load_job_files([EXAMPLE])
    assert errors == [] and [job.config.type for job in jobs] == ["azure_event_hub_export"]


def test_connection_string_and_the_documented_sas_form() -> None:
    parts = EventHubConnectionString.parse(
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=abc=;EntityPath=hub1"
    )
    assert (parts.host, parts.key_name, parts.key, parts.entity_path) == (
        "ns.servicebus.windows.net",
        "send",
        "abc=",
        "hub1",
    )
    token = sas_token("https://ns.servicebus.windows.net", "send", "abc=", 1800000000)
    scheme, _, query = token.partition(" ")
    fields = dict(parse_qsl(query))
    assert scheme == "SharedAccessSignature" and set(fields) == {"sr", "sig", "se", "skn"}
    assert fields["sr"] == "https://ns.servicebus.windows.net" and fields["se"] == "1800000000"
    with pytest.raises(ValueError, match="SharedAccessKey"):
        EventHubConnectionString.parse("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send")


def test_the_stand_in_checks_the_sas_signature_and_expiry(hub: str, event_hub_stand: EventHubSandbox) -> None:
    url = f"{event_hub_stand.base_url}/{hub}/messages"
    resource = f"https://{event_hub_stand.host}:{event_hub_stand.port}"
    body = b'[{"Body":"x"}]'
    headers = {"Content-Type": "application/vnd.microsoft.servicebus.json"}

    def post(token: str) -> requests.Response:
        return requests.post(url, data=body, headers={**headers, "Authorization": token}, timeout=10)

    future = int(time.time()) + 600
    assert post(sas_token(resource, "send", SEND_KEY, future)).status_code == 201
    assert post(sas_token(f"{resource}/{hub}", "send", SEND_KEY, future)).status_code == 201  # entity scope
    expired = post(sas_token(resource, "send", SEND_KEY, int(time.time()) - 5))
    tampered = post(sas_token(resource, "send", SEND_KEY, future).replace(f"se={future}", f"se={future + 1}"))
    other_hub = post(sas_token(f"{resource}/other-hub", "send", SEND_KEY, future))
    assert (expired.status_code, tampered.status_code, other_hub.status_code) == (401, 401, 401)
    assert (
        "ExpiredToken" in expired.text
        and "InvalidSignature" in tampered.text
        and "InvalidAudience" in other_hub.text
    )
    assert len(event_hub_stand.events(hub)) == 2


def test_first_run_sends_every_member_then_only_the_churn(
    hub: str, event_hub_stand: EventHubSandbox, lytics: Any
) -> None:
    JobRun(config(hub, fields=["email", "score_engagement"]), job_id="eh_churn").run()
    first = bodies(event_hub_stand, hub)
    members = {m["_uid"] for m in lytics.expected_members("high_value")}
    assert {b["uid"] for b in first} == members and len(first) == len(members)
    assert {b["event"] for b in first} == {"enter"} and set(first[0]["user"]) >= {"email", "score_engagement"}
    props = [e["UserProperties"] for e in event_hub_stand.events(hub)]
    assert len({p["event_id"] for p in props}) == len(members)
    assert all(p["event_id"] == b["id"] for p, b in zip(props, first, strict=True))

    lytics.set_churn("high_value", exits=5, enters=7, changes=0)
    lytics.set_version("high_value", 1)
    report = JobRun(config(hub, fields=["email", "score_engagement"]), job_id="eh_churn", day=24).run()[
        "report"
    ]
    second = bodies(event_hub_stand, hub)[len(first) :]
    assert sorted(b["event"] for b in second) == ["enter"] * 7 + ["exit"] * 5
    assert report["delivery"]["outcomes"] == {"enter:Sent": 7, "exit:Sent": 5}


def test_existing_users_off_records_the_audience_and_sends_nothing(
    hub: str, event_hub_stand: EventHubSandbox
) -> None:
    JobRun(config(hub, existing_users=False), job_id="eh_existing").run()
    assert event_hub_stand.events(hub) == []


def test_a_killed_delivery_retried_sends_every_event_once(hub: str, event_hub_stand: EventHubSandbox) -> None:
    run = JobRun(config(hub, batch_size=50), job_id="eh_kill")
    run.run(until="scan")
    event_hub_stand.faults.add("5xx", status=503, path_regex="/messages$", after=3, times=None)
    with pytest.raises(ServiceError):
        run.run()
    assert len(event_hub_stand.events(hub)) == 150  # three batches acknowledged before the outage
    event_hub_stand.faults.clear()
    run.run()
    ids = [e["UserProperties"]["event_id"] for e in event_hub_stand.events(hub)]
    assert len(ids) == len(set(ids)) == 500


def test_throttling_is_retried_after_retry_after(hub: str, event_hub_stand: EventHubSandbox) -> None:
    event_hub_stand.faults.add("429", path_regex="/messages$", retry_after=0, times=1)
    JobRun(config(hub, user_limit=10), job_id="eh_429").run()
    assert len(event_hub_stand.events(hub)) == 10
    assert event_hub_stand.calls_to("send") == 2


def test_batches_stay_within_one_megabyte_and_an_oversized_event_is_rejected(
    hub: str, event_hub_stand: EventHubSandbox
) -> None:
    hook = AzureEventHubHook()
    dest = EventHubEventDestination(hook, hub, job_id="j", run_id="r", audience="a")
    big = "x" * 300_000

    def event(n: int, size: str) -> AudienceEvent:
        return AudienceEvent(f"id{n}", "enter", f"u{n}", f"u{n}", "a", "j", "r", {"blob": size})

    refused = dest.send_events(
        [event(1, big), event(2, big), event(3, big), event(4, big), event(5, "x" * 1_100_000)]
    )
    assert set(refused) == {"id5"} and "1048576" in (refused["id5"] or "")
    assert event_hub_stand.batches == [3, 1] and len(event_hub_stand.events(hub)) == 4
    with pytest.raises(ServiceError, match="413"):  # the stand-in enforces the documented limit
        hook.request(
            "POST",
            f"/{hub}/messages",
            data=b'[{"Body":"' + b"y" * MAX_BATCH_BYTES + b'"}]',
            headers={"Content-Type": "application/vnd.microsoft.servicebus.json"},
        )


@pytest.mark.parametrize(
    ("breakage", "status"),
    [("wrong_key", 401), ("listen_only", 401), ("disabled", 403), ("unknown_hub", 404)],
)
def test_permanent_errors_fail_fast(
    hub: str, event_hub_stand: EventHubSandbox, monkeypatch: pytest.MonkeyPatch, breakage: str, status: int
) -> None:
    target = hub
    if breakage == "wrong_key":
        text = event_hub_stand.connection_string("send").replace(SEND_KEY, "d3Jvbmcta2V5")
        monkeypatch.setenv(
            "AIRFLOW_CONN_AZURE_EVENT_HUB_DEFAULT",
            json.dumps({"conn_type": "azure_event_hub", "password": text}),
        )
    elif breakage == "listen_only":
        monkeypatch.setenv("AIRFLOW_CONN_AZURE_EVENT_HUB_DEFAULT", connection(event_hub_stand, "listen"))
    elif breakage == "disabled":
        event_hub_stand.hubs[hub].disabled = True
    else:
        target = "no-such-hub"
    run = JobRun(config(target, user_limit=20), job_id=f"eh_{breakage}")
    run.run(until="scan")
    with pytest.raises(AirflowFailException, match=str(status)) as failure:
        run.run()
    assert event_hub_stand.calls_to("send") == 1  # no retry of a permanent error
    assert SEND_KEY not in str(failure.value)


def test_event_hub_from_the_connection_string(
    hub: str, event_hub_stand: EventHubSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AZURE_EVENT_HUB_DEFAULT", connection(event_hub_stand, "send", hub))
    ok, message = AzureEventHubHook().test_connection()
    assert ok and hub in message and SEND_KEY not in message
    JobRun(
        {"type": "azure_event_hub_export", "audience": "high_value", "user_limit": 3}, job_id="eh_entity"
    ).run()
    assert len(event_hub_stand.events(hub)) == 3
