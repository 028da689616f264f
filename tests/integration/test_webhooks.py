"""Webhooks: Audience Triggers Webhook against the TLS receiver stand-in.

CloudEvents parsed with the cloudevents SDK; a run through 429s, 5xx, a dropped connection and an
expired OAuth token delivers every event once; a retried task sends no acknowledged event again;
Existing Users off; Fields to Trigger; Webhook Templates; header / parameter authorization; bad
events land in rejects; the example configs and the registration.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.webhooks import WebhooksHook
from lytics_provider.integrations.catalog import read_integration, todo_entries
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.operators import webhooks as webhook_operators
from lytics_provider.operators.webhooks import WebhookAudienceTriggersOperator
from lytics_provider.pipeline import http
from lytics_provider.sync.events import event_id
from lytics_provider.sync.operator import SyncRunInputs
from lytics_sandbox.webhooks import WebhookReceiver, connection_json, make_tls
from tests.integration.test_sync_engine import member, snapshot

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "include" / "jobs").glob("webhooks_*.yaml"))
DECLARATION = REPO / "lytics_provider" / "integrations" / "webhooks.yaml"
CONN = "AIRFLOW_CONN_WEBHOOKS_DEFAULT"


@pytest.fixture(scope="session")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(make_tls(tmp_path_factory.mktemp("webhooks-tls")))
    with server:
        yield server


@pytest.fixture
def hook_receiver(
    receiver: WebhookReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[WebhookReceiver]:
    """The receiver emptied, no authorization, this test's data directory, retries without waiting."""
    receiver.reset()
    receiver.auth = "none"
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(CONN, connection_json(receiver))
    monkeypatch.setattr(http.RetryPolicy, "backoff", lambda self, attempt: 0.0)
    yield receiver
    receiver.reset()


class Runner:
    """Runs the deliver operator on snapshots, the way the DAG's deliver task would."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **options: Any) -> None:
        self.tmp_path = tmp_path
        self.monkeypatch = monkeypatch
        self.options = {"job_id": "hooks", "task_id": "deliver", **options}
        self.count = 0

    def run(
        self, members: list[dict[str, Any]], previous: Path | None = None, run_id: str = "run1"
    ) -> dict[str, Any]:
        self.count += 1
        current = snapshot(self.tmp_path / f"s{self.count}.db", members)
        folder = self.tmp_path / run_id
        folder.mkdir(exist_ok=True)
        self.monkeypatch.setattr(webhook_operators, "baseline_snapshot", lambda job_id: previous)
        op = WebhookAudienceTriggersOperator(**self.options)
        inputs = SyncRunInputs(
            str(current), {"slug": "vip"}, len(members), previous, False, folder, run_id, {}
        )
        self.last_snapshot = current
        return op.run_sync(inputs)


def people(*numbers: int, **extra: Any) -> list[dict[str, Any]]:
    return [member(i, **extra) for i in numbers]


# -- CloudEvents ----------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_events", [False, True], ids=["one-per-request", "batched"])
def test_cloudevents_parse_with_the_sdk(
    hook_receiver: WebhookReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_events: bool
) -> None:
    from cloudevents.core.bindings.http import HTTPMessage, from_http_event

    runner = Runner(
        tmp_path,
        monkeypatch,
        webhook_url=hook_receiver.url(),
        cloud_events=True,
        existing_users=True,
        batch_events=batch_events,
        batch_size=4,
        include_audience_membership=True,
    )
    report = runner.run(people(*range(1, 11)))
    assert report["outcomes"] == {"enter:Sent": 10}
    parsed = []
    for headers, body in hook_receiver.bodies:
        content_type = headers["content-type"]
        if batch_events:
            assert content_type.startswith("application/cloudevents-batch+json")
            items = [json.dumps(item).encode() for item in json.loads(body)]
        else:
            assert content_type.startswith("application/cloudevents+json")
            items = [body]
        for item in items:
            message = HTTPMessage(headers={"content-type": "application/cloudevents+json"}, body=item)
            parsed.append(from_http_event(message))
    assert len(hook_receiver.bodies) == (3 if batch_events else 10)
    assert sorted(e.get_id() for e in parsed) == sorted(
        event_id("hooks", "run1", f"u{i}", "enter") for i in range(1, 11)
    )
    first = parsed[0]
    assert first.get_specversion() == "1.0"
    assert first.get_type() == "com.lytics.audience.user.event"
    assert first.get_source() == "/work/id"
    assert first.get_extension("lyticsevent") == "enter"
    data = first.get_data()
    assert isinstance(data, dict) and data["_uid"] == first.get_subject()
    assert data["segments_all"] == ["vip"]
    assert data["segment_events"][0]["slug"] == "vip" and data["segment_events"][0]["event"] == "enter"
    assert hook_receiver.duplicate_deliveries == 0


# -- faults, OAuth, retries ------------------------------------------------------------------------


def test_a_run_through_429_5xx_a_drop_and_an_expired_token_delivers_every_event_once(
    hook_receiver: WebhookReceiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hook_receiver.auth = "oauth2"
    monkeypatch.setenv(
        CONN, connection_json(hook_receiver, additional_request_parameters={"audience": "lytics-hooks"})
    )
    hook = r"/hooks/"
    hook_receiver.faults.add("429", path_regex=hook, after=1, retry_after=1)
    hook_receiver.faults.add("5xx", status=502, path_regex=hook, after=3)
    hook_receiver.faults.add("drop", path_regex=hook, after=5)
    hook_receiver.answer_5xx_after_accepting(0)
    hook_receiver.expire_tokens_after(4)
    caplog.set_level(logging.WARNING)
    runner = Runner(tmp_path, monkeypatch, webhook_url=hook_receiver.url(), existing_users=True)

    members = people(*range(1, 21))
    report = runner.run(members)

    wanted = {event_id("hooks", "run1", m["_uid"], "enter") for m in members}
    assert set(hook_receiver.events) == wanted
    assert report["outcomes"] == {"enter:Sent": 20}
    assert hook_receiver.faults.injected == {"429": 1, "5xx": 1, "drop": 1}
    assert hook_receiver.refused_tokens == 1 and hook_receiver.tokens_issued == 2
    assert all(r["audience"] == "lytics-hooks" for r in hook_receiver.token_requests)
    assert "retrying in 1.0s" in caplog.text  # the 429's Retry-After
    assert "renewed the credentials" in caplog.text
    assert hook_receiver.duplicate_deliveries == 0
    assert hook_receiver.client_secret not in caplog.text


def test_a_token_about_to_expire_is_renewed_before_it_is_used(
    hook_receiver: WebhookReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook_receiver.auth = "oauth2"
    hook_receiver.token_lifetime = 30.0  # within the client's 30 s margin: stale as soon as it is issued
    monkeypatch.setenv(CONN, connection_json(hook_receiver))
    Runner(tmp_path, monkeypatch, webhook_url=hook_receiver.url(), existing_users=True).run(people(1, 2, 3))
    assert len(hook_receiver.events) == 3
    assert hook_receiver.tokens_issued == 3 and hook_receiver.refused_tokens == 0


def test_a_request_stored_but_answered_503_is_sent_again_and_counted_once(
    hook_receiver: WebhookReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook_receiver.answer_5xx_after_accepting(1)
    runner = Runner(
        tmp_path,
        monkeypatch,
        webhook_url=hook_receiver.url(),
        existing_users=True,
        batch_events=True,
        batch_size=5,
    )
    runner.run(people(*range(1, 11)))
    assert len(hook_receiver.events) == 10
    assert hook_receiver.duplicate_deliveries == 5  # the first batch arrived twice: same ids, kept once
    keys = [headers["idempotency-key"] for headers, _ in hook_receiver.bodies]
    assert keys[0] == keys[1] and len(set(keys)) == 2


def test_a_retried_task_sends_no_acknowledged_event_again(
    hook_receiver: WebhookReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONN, connection_json(hook_receiver, max_attempts=2))
    hook_receiver.faults.add("5xx", status=503, path_regex=r"/hooks/", after=3, times=None)
    runner = Runner(
        tmp_path,
        monkeypatch,
        webhook_url=hook_receiver.url(),
        existing_users=True,
        batch_events=True,
        batch_size=3,
    )
    members = people(*range(1, 17))
    with pytest.raises(http.ServiceError):
        runner.run(members)
    acknowledged = set(hook_receiver.events)
    assert len(acknowledged) == 9  # three batches of three before the receiver went down
    hook_receiver.faults.clear()
    count = runner.count
    runner.count = count - 1  # the same run again: same snapshot path, same plan, same ids
    report = runner.run(members)
    assert set(hook_receiver.events) == {event_id("hooks", "run1", m["_uid"], "enter") for m in members}
    assert hook_receiver.duplicate_deliveries == 0
    assert report["outcomes"] == {"enter:Sent": 16}


# -- options ---------------------------------------------------------------------------------------


def test_existing_users_off_sends_nothing_first_then_only_the_changes(
    hook_receiver: WebhookReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = Runner(tmp_path, monkeypatch, webhook_url=hook_receiver.url())
    first = runner.run(people(1, 2, 3))
    assert hook_receiver.events == {}
    assert first["outcomes"] == {"enter:SkippedExistingUser": 3}
    second = runner.run(people(2, 3, 4), previous=runner.last_snapshot, run_id="run2")
    assert second["outcomes"] == {"enter:Sent": 1, "exit:Sent": 1}
    kinds = sorted((e.kind, e.uid) for e in hook_receiver.received())
    assert kinds == [("enter", "u4"), ("exit", "u1")]
    assert hook_receiver.held() == {"u4"}


def test_fields_to_trigger_send_a_change_only_when_one_of_them_moved(
    hook_receiver: WebhookReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = Runner(
        tmp_path,
        monkeypatch,
        webhook_url=hook_receiver.url(),
        fields_to_trigger=["score"],
        export_fields=["email", "score"],
        audience_trigger_events=["enter"],
    )
    runner.run(people(1, 2, 3))
    after = [member(1, score=9), member(2, name="renamed"), member(3)]
    report = runner.run(after, previous=runner.last_snapshot, run_id="run2")
    assert report["outcomes"] == {"change:Sent": 1}
    (change,) = hook_receiver.received()
    assert (change.kind, change.uid) == ("change", "u1")
    data = change.document["data"]
    assert data["score"] == 9 and set(data) == {"email", "score", "segment_events"}  # Export Fields only


def test_webhook_templates_shape_the_body_and_the_url(
    hook_receiver: WebhookReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    template = """{
      users: [{ identifiers: { email: event.get("email") },
                attributes: { language: event.get("language", "en_US"), audience: event.audience } }],
    }"""
    base = hook_receiver.url("insider")
    runner = Runner(
        tmp_path,
        monkeypatch,
        webhook_url_template=f'"{base}-" + event.kind',
        webhook_template=template,
        existing_users=True,
        audience_trigger_events=["enter"],
    )
    runner.run([member(1), member(2, language="de_DE")])
    bodies = sorted(
        json.loads(body)["users"][0]["attributes"]["language"] for _, body in hook_receiver.bodies
    )
    assert bodies == ["de_DE", "en_US"]
    assert {e.hook for e in hook_receiver.received()} == {"insider-enter"}
    ids = {headers["idempotency-key"] for headers, _ in hook_receiver.bodies}
    assert ids == {event_id("hooks", "run1", f"u{i}", "enter") for i in (1, 2)}


def test_a_template_that_fails_on_one_member_rejects_only_that_event(
    hook_receiver: WebhookReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = Runner(
        tmp_path,
        monkeypatch,
        webhook_url=hook_receiver.url(),
        webhook_template='{ email: std.asciiLower(event.get("email")) }',
        existing_users=True,
    )
    report = runner.run([member(1), member(2, email=None)])
    assert report["outcomes"] == {"enter:Sent": 1, "enter:Rejected": 1}
    reject = json.loads(Path(report["rejects_file"]).read_text().splitlines()[0])
    assert "webhook template failed" in reject["reason"]


def test_a_receiver_that_refuses_an_event_isolates_it_into_rejects(
    hook_receiver: WebhookReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook_receiver.require_valid_email = True
    runner = Runner(
        tmp_path,
        monkeypatch,
        webhook_url=hook_receiver.url(),
        existing_users=True,
        batch_events=True,
        batch_size=8,
    )
    members = [*people(*range(1, 8)), member(8, email="not-an-address")]
    report = runner.run(members)
    assert report["outcomes"] == {"enter:Sent": 7, "enter:Rejected": 1}
    assert len(hook_receiver.events) == 7
    reject = json.loads(Path(report["rejects_file"]).read_text().splitlines()[0])
    assert reject["uid"] == "u8" and "not an email address" in reject["reason"]


def test_a_receiver_that_refuses_every_event_fails_the_task(
    hook_receiver: WebhookReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook_receiver.require_valid_email = True
    runner = Runner(tmp_path, monkeypatch, webhook_url=hook_receiver.url(), existing_users=True)
    with pytest.raises(AirflowFailException, match="refused the first 20 events"):
        runner.run([member(i, email=f"bad{i}") for i in range(1, 41)])
    assert hook_receiver.events == {}


def test_header_and_parameter_authorization_and_a_refused_secret_fails_fast(
    hook_receiver: WebhookReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook_receiver.auth = "headers"
    hook_receiver.required_headers = {"X-REQUEST-TOKEN": "insider-token-123"}
    hook_receiver.required_params = {"partner": "lyticspartner"}
    monkeypatch.setenv(CONN, connection_json(hook_receiver))
    runner = Runner(tmp_path, monkeypatch, webhook_url=hook_receiver.url(), existing_users=True)
    runner.run(people(1, 2))
    assert len(hook_receiver.events) == 2

    wrong = {"X-REQUEST-TOKEN": "rotated-token-456"}
    monkeypatch.setenv(CONN, connection_json(hook_receiver, request_headers=wrong))
    with pytest.raises(AirflowFailException) as failure:
        Runner(
            tmp_path, monkeypatch, webhook_url=hook_receiver.url(), existing_users=True, job_id="other"
        ).run(people(3), run_id="run9")
    assert "401" in str(failure.value) and "rotated-token-456" not in str(failure.value)
    assert len(hook_receiver.events) == 2


def test_the_receiver_certificate_is_verified_against_the_ca_bundle(
    hook_receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONN, json.dumps({"conn_type": "webhooks", "extra": {"max_attempts": 1}}))
    with pytest.raises(http.ServiceError, match="connection failed"):
        WebhooksHook().send("POST", hook_receiver.url(), b"{}", {"Content-Type": "application/json"})
    with pytest.raises(requests.exceptions.SSLError):
        requests.post(hook_receiver.url(), data=b"{}", timeout=5)
    monkeypatch.setenv(CONN, connection_json(hook_receiver))
    response = WebhooksHook().send(
        "POST", hook_receiver.url(), b'{"id": "x1"}', {"Content-Type": "application/json"}
    )
    assert response.status_code == 202 and "x1" in hook_receiver.events


def test_the_test_button_fetches_a_token(
    hook_receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook_receiver.auth = "oauth2"
    monkeypatch.setenv(CONN, connection_json(hook_receiver))
    ok, message = WebhooksHook().test_connection()
    assert ok and "issued an access token" in message
    monkeypatch.setenv(
        CONN, connection_json(hook_receiver, auth_method="oauth2_client_credentials", token_url="")
    )
    ok, message = WebhooksHook().test_connection()
    assert not ok and "token_url" in message


# -- Webhook User Enrichment -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def lytics_for_enrichment() -> Iterator[Any]:
    from lytics_sandbox.lytics import LyticsSandbox
    from lytics_sandbox.synth import SyntheticAccount

    with LyticsSandbox(SyntheticAccount(seed=5, audiences={"new_customers": 30, "returning": 12})) as sandbox:
        yield sandbox


def test_user_enrichment_posts_each_answer_once_with_its_origin_even_across_a_retry(
    hook_receiver: WebhookReceiver, lytics_for_enrichment: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conformance.runner import JobRun
    from tests.helpers import lytics_conn

    lytics = lytics_for_enrichment
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics.base_url))
    config = {
        "type": "webhooks_user_enrichment",
        "audience": "new_customers",
        "webhook_url": hook_receiver.enrich_url(),
        "export_fields": ["email", "first_name"],
        "existing_users": True,
    }
    run = JobRun(config, job_id="enrich")
    run.run(until="scan")
    lytics.faults.add("5xx", status=503, path_regex=r"/collect/json/", times=None)
    with pytest.raises(http.ServiceError):
        run.run()
    assert sum(hook_receiver.enrich_requests.values()) == 30  # every member answered before the stream failed
    lytics.faults.clear()
    run.run()
    assert sum(hook_receiver.enrich_requests.values()) == 30  # the retry asked the webhook nothing again
    posted = lytics.collected("webhook_enrichment")
    members = {m["_uid"]: m for m in lytics.expected_members("new_customers")}
    assert sorted(r["origin"]["_uid"] for r in posted) == sorted(members)
    for record in posted:
        member_row = members[record["origin"]["_uid"]]
        assert record["origin"]["email"] == member_row["email"]
        assert record["fields_seen"] == ["_uid", "email", "first_name"]
        assert record["partner_id"].startswith("p-")
    assert run.xcoms["deliver"]["enrichment"]["answers"] == 30


def test_several_audiences_each_run_their_own_chain_and_name_their_audience(
    hook_receiver: WebhookReceiver, lytics_for_enrichment: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conformance.runner import JobRun
    from tests.helpers import lytics_conn

    lytics = lytics_for_enrichment
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics.base_url))
    config = {
        "type": "webhooks_audience_triggers",
        "audiences": ["new_customers", "returning"],
        "webhook_url": hook_receiver.url(),
        "existing_users": True,
        "batch_events": True,
    }
    run = JobRun(config, job_id="multi")
    assert "audience" not in run.dag.params
    xcoms = run.run()
    assert (xcoms["report_1"]["enters"], xcoms["report_2"]["enters"]) == (30, 12)
    slugs = [e.document["data"]["segment_events"][0]["slug"] for e in hook_receiver.received()]
    assert sorted(set(slugs)) == ["new_customers", "returning"]
    assert (slugs.count("new_customers"), slugs.count("returning")) == (30, 12)


# -- configs and registration ----------------------------------------------------------------------


def test_registration_is_complete() -> None:
    assert todo_entries(read_integration(DECLARATION)) == []


def test_example_configs_load() -> None:
    jobs, errors = load_job_files(EXAMPLES)
    assert errors == []
    assert {job.config.type for job in jobs} == {"webhooks_audience_triggers", "webhooks_user_enrichment"}
    triggers = next(j.config for j in jobs if j.path.name == "webhooks_audience_triggers.yaml")
    assert triggers.frequency == "every 15 minutes" and triggers.scan_max_age_minutes == 5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"webhook_url": "http://hooks.example.com/x"}, "must be an https:// URL"),
        (
            {"webhook_template": "{ a: "},
            "webhook_template is not valid jsonnet: STATIC ERROR: webhook_template:1:5",
        ),
        (
            {"webhook_url_template": '"https://x.example/" + event.get("email")'},
            "set exactly one of webhook_url",
        ),
        ({"fields_to_trigger": [f"f{i}" for i in range(76)]}, "at most 75"),
        ({"audiences": ["a", "b"]}, "set exactly one of audience"),
        ({"frequency": "every 3 minutes"}, "shorter than the 5-minute minimum"),
    ],
)
def test_bad_options_name_the_field_and_the_fix(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    import yaml

    config = yaml.safe_load((REPO / "include" / "jobs" / "webhooks_audience_triggers.yaml").read_text())
    path = tmp_path / "jobs" / "hooks.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({**config, **change}))
    jobs, errors = load_job_files([path])
    assert jobs == [] and len(errors) == 1
    assert "hooks.yaml" in str(errors[0]) and message in str(errors[0])
