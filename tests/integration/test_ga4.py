"""GA4 Measurement Protocol: the rules checked before sending, the stand-in, whole runs, the config."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import ValidationError

from lytics_provider.hooks.ga4 import GA4AudienceDestination, GA4ConfigError, GA4MeasurementProtocolHook
from lytics_provider.hooks.ga4_rules import validate_payload
from lytics_provider.integrations.catalog import read_integration, todo_entries
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.jobs.types.ga4 import GA4AudienceExportJob
from lytics_provider.pipeline import http
from lytics_provider.sync.changes import plan_changes
from lytics_provider.sync.plan import SyncPlan
from lytics_sandbox.ga4 import GA4Sandbox
from tests.conformance.runner import JobRun
from tests.helpers import lytics_conn, serve_connection
from tests.integration.test_sync_engine import member, snapshot

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "include" / "jobs" / "ga4_audience_export.yaml"
DECLARATION = REPO / "lytics_provider" / "integrations" / "ga4.yaml"
SECRET = "mpTestApiSecret0123"
WEB, APP = "G-TEST123", "1:1234567890:android:abc"
AUDIENCE = "vip_buyers"


@pytest.fixture(scope="module")
def ga4_stand() -> Iterator[GA4Sandbox]:
    with GA4Sandbox() as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def lytics_stand() -> Iterator[Any]:
    from lytics_sandbox.lytics import LyticsSandbox
    from lytics_sandbox.synth import SyntheticAccount

    with LyticsSandbox(SyntheticAccount(seed=5, audiences={"all": 200, AUDIENCE: 30})) as sandbox:
        yield sandbox


@pytest.fixture
def stand(ga4_stand: GA4Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[GA4Sandbox]:
    ga4_stand.streams.clear()
    ga4_stand.dropped.clear()
    ga4_stand.add_stream(WEB, SECRET)
    ga4_stand.add_stream(APP, SECRET)
    serve_connection(monkeypatch, tmp_path, "ga4_default", ga4_stand.connection(SECRET))
    yield ga4_stand
    ga4_stand.faults.clear()


@pytest.fixture
def lytics(lytics_stand: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    from lytics_sandbox.synth import SyntheticAccount

    lytics_stand.account = SyntheticAccount(seed=5, audiences={"all": 200, AUDIENCE: 30})
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics_stand.base_url))
    return lytics_stand


# -- declaration, example, config ------------------------------------------------------------------


def test_registration_is_complete() -> None:
    assert todo_entries(read_integration(DECLARATION)) == []


def test_example_config_loads_and_builds_scan_deliver_report() -> None:
    jobs, errors = load_job_files([EXAMPLE])
    assert errors == []
    [job] = jobs
    run = JobRun(job.config.model_dump(), job_id="ga4_example")
    deliver = run.dag.get_task("deliver")
    assert run.dag.get_task("scan").downstream_task_ids == {"deliver"}
    assert (deliver.measurement_id, deliver.client_id, deliver.user_dimension) == (
        "G-XXXXXXXXXX",
        "ga_client_id",
        "ly_user_id_dim",
    )
    assert deliver.segment_dimension == "ly_segments_dim"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"client_id": None}, "gtag.js needs client_id"),
        (
            {"ga4_version": "Firebase", "firebase_app_id": APP},
            "needs firebase_app_id and app_instance_id_field",
        ),
        ({"export_scalar_fields": ["scores.momentum"]}, "must start with a letter"),
        ({"export_scalar_fields": ["ga_score"]}, "reserved"),
        (
            {"export_scalar_fields": [f"f{i}" for i in range(25)], "session_id_field": "s"},
            "exceed the 25 params",
        ),
        ({"user_dimension": "a_user_dimension_name_too_long"}, "at most 24 characters"),
    ],
)
def test_config_names_the_rule_it_breaks(extra: dict[str, Any], message: str) -> None:
    base = {"type": "ga4_audience_export", "audience": "a", "client_id": "_uid", "measurement_id": WEB}
    with pytest.raises(ValidationError, match=message):
        GA4AudienceExportJob(**{**base, **extra})


# -- the stand-in and the provider's rules: two readings of the same documentation ---------------------

PAYLOADS = [
    {"client_id": "c1", "events": [{"name": "enter_vip", "params": {"city": "Paris"}}]},
    {"client_id": "c1", "events": [{"name": "_bad", "params": {}}]},
    {"client_id": "c1", "events": [{"name": "session_start", "params": {}}]},
    {"client_id": "c1", "events": [{"name": "e" * 41}]},
    {"client_id": "c1", "events": [{"name": "ok", "params": {"p": "x" * 101}}]},
    {"client_id": "c1", "events": [{"name": "ok", "params": {f"p{i}": i for i in range(26)}}]},
    {"client_id": "c1", "events": [{"name": "ok", "params": {"google_x": 1}}]},
    {"client_id": "c1", "events": [{"name": "ok", "params": {"p": [1, 2]}}]},
    {"client_id": "c1", "events": [{"name": "ok"}] * 26},
    {"client_id": "", "events": [{"name": "ok"}]},
    {"client_id": "c1", "events": [{"name": "ok"}], "user_properties": {"user_id": {"value": "u"}}},
    {"client_id": "c1", "events": [{"name": "ok"}], "user_properties": {"dim": {"value": "v" * 37}}},
    {"client_id": "c1", "events": [{"name": "ok"}], "user_properties": {"ly_segments_dim": {"value": "a,b"}}},
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_the_rules_agree_with_the_validation_server(stand: GA4Sandbox, payload: dict[str, Any]) -> None:
    answer = requests.post(
        f"{stand.base_url}/debug/mp/collect",
        params={"measurement_id": WEB, "api_secret": SECRET},
        data=json.dumps(payload),
        timeout=10,
    )
    server = answer.json()["validationMessages"]
    ours = validate_payload(payload, "client_id")
    assert answer.status_code == 200
    assert {m["validationCode"] for m in server} == {v.code for v in ours}


def test_collect_answers_2xx_and_drops_what_breaks_a_rule(stand: GA4Sandbox) -> None:
    for payload in PAYLOADS[:2]:
        answer = requests.post(
            f"{stand.base_url}/mp/collect",
            params={"measurement_id": WEB, "api_secret": SECRET},
            data=json.dumps(payload),
            timeout=10,
        )
        assert answer.status_code == 204 and answer.content == b""
    wrong = requests.post(
        f"{stand.base_url}/mp/collect",
        params={"measurement_id": WEB, "api_secret": "nope"},
        data=json.dumps(PAYLOADS[0]),
    )
    assert wrong.status_code == 204
    assert [e["name"] for _, e in stand.streams[WEB].events()] == ["enter_vip"]
    assert [messages[0]["validationCode"] for messages, _ in stand.dropped] == [
        "NAME_INVALID",
        "VALUE_INVALID",
    ]


def test_the_test_button_uses_the_validation_server(stand: GA4Sandbox) -> None:
    ok, message = GA4MeasurementProtocolHook().test_connection()
    assert ok and "does not check the API secret" in message
    assert stand.calls_to("debug_collect") >= 1 and stand.streams[WEB].received == []


# -- the adapter: members breaking a rule are rejects naming it ---------------------------------------


def test_members_breaking_a_rule_are_rejects_with_the_rule(stand: GA4Sandbox, tmp_path: Path) -> None:
    members = [
        member(1, city="Paris", ga="c1"),
        member(2, city="x" * 150, ga="c2"),
        member(3, city="Lyon"),
        member(4, city=["a", "b"], ga="c4"),
        member(5, city="Nice", ga="c5"),
    ]
    dest = GA4AudienceDestination(
        hook=GA4MeasurementProtocolHook(),
        ga4_version="gtag.js",
        stream={"measurement_id": WEB},
        client_id="ga",
        export_scalar_fields=["city"],
        job_id="job",
        run_id="run1",
        audience="vip",
    )
    with closing(SyncPlan(tmp_path / "plan.db")) as plan:
        plan.set_step("planned", plan_changes(plan, dest, snapshot(tmp_path / "a.db", members), None))
        dest.act(plan)
        rejects = {row[3]: row[6] for row in plan.iter_outcomes(rejected_only=True)}
    assert set(rejects) == {"u2", "u3", "u4"}
    assert rejects["u2"].startswith("VALUE_OUT_OF_BOUNDS at events[0].params.city")
    assert rejects["u3"].startswith("VALUE_REQUIRED at client_id")
    assert rejects["u4"].startswith("VALUE_INVALID at events[0].params.city")
    assert sorted(who for who, _ in stand.streams[WEB].events()) == ["c1", "c5"]
    assert stand.dropped == []


def test_an_audience_slug_ga4_refuses_fails_before_sending(stand: GA4Sandbox) -> None:
    with pytest.raises(GA4ConfigError, match="must start with a letter"):
        GA4AudienceDestination(
            hook=GA4MeasurementProtocolHook(),
            ga4_version="gtag.js",
            stream={"measurement_id": WEB},
            client_id="ga",
            job_id="job",
            run_id="run1",
            audience="high-value",
        )


# -- whole runs -----------------------------------------------------------------------------------


def config(**extra: Any) -> dict[str, Any]:
    return {
        "type": "ga4_audience_export",
        "audience": AUDIENCE,
        "measurement_id": WEB,
        "client_id": "_uid",
        "user_id_field": "user_id",
        "engagement_time_field": "score_engagement",
        "export_scalar_fields": ["city", "country"],
        **extra,
    }


def test_enters_then_exits_are_named_events_with_params_and_user_properties(
    stand: GA4Sandbox, lytics: Any
) -> None:
    first = JobRun(config(), job_id="ga4_run").run()["report"]
    members = {m["_uid"]: m for m in lytics.expected_members(AUDIENCE)}
    assert first["delivery"]["outcomes"] == {"enter:Sent": 30} and first["delivery"]["requests"] == 30
    events = stand.streams[WEB].events()
    who, event = events[0]
    profile = members[who]
    assert event["name"] == f"enter_{AUDIENCE}"
    assert event["params"] == {
        "engagement_time_msec": profile["score_engagement"],
        "city": profile["city"],
        "country": profile["country"],
    }
    body = stand.streams[WEB].received[0]
    assert body["user_id"] == profile["user_id"]
    assert body["user_properties"]["ly_user_id_dim"] == {"value": profile["user_id"]}
    assert set(body["user_properties"]["ly_segments_dim"]["value"].split(",")) <= set(profile["segments"])
    lytics.account.set_churn(AUDIENCE, exits=3, enters=3, changes=0)
    lytics.set_version(AUDIENCE, 1)
    second = JobRun(config(), job_id="ga4_run", day=24).run()["report"]
    assert second["delivery"]["outcomes"] == {"enter:Sent": 3, "exit:Sent": 3}
    now = {m["_uid"] for m in lytics.expected_members(AUDIENCE)}
    assert stand.entered(WEB, AUDIENCE) == now
    assert sum(1 for _, e in stand.streams[WEB].events() if e["name"] == f"exit_{AUDIENCE}") == 3
    assert stand.dropped == []


def test_firebase_streams_use_app_instance_id(stand: GA4Sandbox, lytics: Any) -> None:
    extra = {
        "ga4_version": "Firebase",
        "firebase_app_id": APP,
        "app_instance_id_field": "_uid",
        "client_id": None,
    }
    JobRun(config(**extra), job_id="ga4_firebase").run()
    bodies = stand.streams[APP].received
    assert len(bodies) == 30 and all("app_instance_id" in b and "client_id" not in b for b in bodies)


def test_an_interrupted_run_resumes_and_sends_each_member_once(stand: GA4Sandbox, lytics: Any) -> None:
    run = JobRun(config(), job_id="ga4_retry")
    run.run(until="scan")
    stand.faults.add("5xx", status=503, path_regex="/mp/collect", after=12, times=None)
    with pytest.raises(http.ServiceError):
        run.run()
    assert len(stand.streams[WEB].events()) == 12
    stand.faults.clear()
    run.run()
    who = [w for w, _ in stand.streams[WEB].events()]
    assert len(who) == 30 and set(who) == {m["_uid"] for m in lytics.expected_members(AUDIENCE)}


# -- the event export: a stream's events, oldest first, each once -----------------------------------


def web_events(start: int, count: int) -> list[dict[str, Any]]:
    return [
        {
            "cid": f"c{i % 7}",
            "event": "page_view" if i % 2 else "add_to_cart",
            "ms": 100 + i,
            "url": f"/p/{i}",
            "user_id": f"u{i % 7}",
        }
        for i in range(start, start + count)
    ]


def event_config(**extra: Any) -> dict[str, Any]:
    return {
        "type": "ga4_event_export",
        "data_streams_to_export": ["web"],
        "measurement_id": WEB,
        "client_id": "cid",
        "event_name_field": "event",
        "engagement_time_field": "ms",
        "user_id_field": "user_id",
        "export_scalar_fields": ["url"],
        **extra,
    }


def test_event_export_sends_each_event_once_oldest_first_then_only_new_ones(
    stand: GA4Sandbox, lytics: Any
) -> None:
    lytics.add_stream_events("web", web_events(0, 12))
    first = JobRun(event_config(), job_id="ga4_events").run()["export"]
    sent = stand.streams[WEB].events()
    assert first["streams"]["web"] == {"sent": 12, "rejected": 0, "skipped_already_sent": 0}
    assert [e["params"]["url"] for _, e in sent] == [f"/p/{i}" for i in range(12)]
    assert sent[1][1] == {"name": "page_view", "params": {"engagement_time_msec": 101, "url": "/p/1"}}
    assert stand.streams[WEB].received[1]["user_properties"] == {"ly_user_id_dim": {"value": "u1"}}
    lytics.add_stream_events("web", web_events(12, 5))
    second = JobRun(event_config(), job_id="ga4_events", day=24).run()["export"]
    assert second["streams"]["web"] == {"sent": 5, "rejected": 0, "skipped_already_sent": 12}
    assert [e["params"]["url"] for _, e in stand.streams[WEB].events()] == [f"/p/{i}" for i in range(17)]


def test_event_export_rejects_rule_breakers_and_resumes_after_an_interruption(
    stand: GA4Sandbox, lytics: Any
) -> None:
    events = web_events(0, 10)
    events[3]["event"] = "session_start"  # reserved
    events[6]["cid"] = ""  # no client
    lytics.add_stream_events("web2", events)
    run = JobRun(event_config(data_streams_to_export=["web2"]), job_id="ga4_events_retry")
    stand.faults.add("5xx", status=503, path_regex="/mp/collect", after=4, times=None)
    with pytest.raises(http.ServiceError):
        run.run()
    assert len(stand.streams[WEB].events()) == 4
    stand.faults.clear()
    report = run.run()["export"]
    urls = [e["params"]["url"] for _, e in stand.streams[WEB].events()]
    assert urls == [f"/p/{i}" for i in range(10) if i not in (3, 6)]
    assert report["streams"]["web2"]["skipped_already_sent"] == 5 and report["rejected"] == 1
    rejects = [json.loads(line) for line in Path(report["rejects_file"]).read_text().splitlines()]
    assert [(r["position"], r["reason"].split(" at ")[0]) for r in rejects] == [
        (3, "NAME_RESERVED"),
        (6, "VALUE_REQUIRED"),
    ]


def test_event_export_dry_run_sends_nothing(stand: GA4Sandbox, lytics: Any) -> None:
    lytics.add_stream_events("web3", web_events(0, 4))
    report = JobRun(event_config(data_streams_to_export=["web3"]), job_id="ga4_dry", dry_run=True).run()[
        "export"
    ]
    assert report["dry_run"] is True and report["streams"]["web3"]["sent"] == 4
    assert stand.streams[WEB].received == []


def test_a_stream_name_ga4_refuses_needs_an_event_name_field(stand: GA4Sandbox, lytics: Any) -> None:
    lytics.add_stream_events("web-app", web_events(0, 2))
    with pytest.raises(GA4ConfigError, match="set event_name_field"):
        JobRun(
            event_config(data_streams_to_export=["web-app"], event_name_field=None), job_id="ga4_bad"
        ).run()
    assert stand.streams[WEB].received == []
