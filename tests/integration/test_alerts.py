"""Alerts of any job: the ``alerts:`` block, failure callbacks, rejects and report alerts to Slack, Teams
and e-mail, against the webhook stand-in and a local SMTP server; no secret in a message or a log."""

from __future__ import annotations

import email
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from lytics_provider.jobs.alerts import AlertsConfig
from lytics_provider.jobs.types.segment import SegmentExportJob
from lytics_provider.notifications.alerts import AlertChannels, JobAlert, send_alert
from lytics_provider.operators.alerts import (
    AlertsNotSent,
    RunAlertsOperator,
    TaskFailureAlert,
    count_rejected,
)
from lytics_sandbox.alert_webhooks import AlertWebhooksSandbox
from tests.conformance.runner import JobRun
from tests.helpers import lytics_conn, make_context

SLACK_TOKEN = "T0ALERT/B0ALERT/slackSecretToken123"
TEAMS_SIG = "teamsSecretSignature456"
TEAMS_PATH = f"/workflows/flow1/triggers/manual/paths/invoke?api-version=1&sig={TEAMS_SIG}"
SENDER = "airflow@example.com"


class Inbox:
    """An aiosmtpd handler keeping every message it is sent."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def webhooks() -> Iterator[AlertWebhooksSandbox]:
    with AlertWebhooksSandbox(slack_tokens=(SLACK_TOKEN,), teams_signatures=(TEAMS_SIG,)) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Inbox, int]]:
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def ga4_and_lytics() -> Iterator[tuple[Any, Any]]:
    """A GA4 stand-in and a Lytics stand-in for the whole-run test."""
    from lytics_sandbox.ga4 import GA4Sandbox
    from lytics_sandbox.lytics import LyticsSandbox
    from lytics_sandbox.synth import SyntheticAccount

    account = SyntheticAccount(seed=3, audiences={"all": 50, "vip": 12})
    with GA4Sandbox() as ga4, LyticsSandbox(account) as lytics:
        yield ga4, lytics


@pytest.fixture
def channels(
    webhooks: AlertWebhooksSandbox, smtp: tuple[Inbox, int], monkeypatch: pytest.MonkeyPatch
) -> AlertChannels:
    inbox, port = smtp
    inbox.messages.clear()
    for messages in [*webhooks.slack.values(), *webhooks.teams.values()]:
        messages.clear()
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_ALERTS",
        json.dumps(
            {"conn_type": "slackwebhook", "host": f"{webhooks.base_url}/services", "password": SLACK_TOKEN}
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_TEAMS_ALERTS",
        json.dumps({"conn_type": "http", "host": webhooks.base_url, "password": TEAMS_PATH}),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_ALERTS",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": port,
                "extra": {"disable_tls": True, "disable_ssl": True},
            }
        ),
    )
    return alerts_config().channels()


def alerts_config(**extra: Any) -> AlertsConfig:
    return AlertsConfig(
        slack_webhook_conn_id="slack_alerts",
        microsoft_teams_webhook_conn_id="teams_alerts",
        email_address="ops@example.com, data@example.com",
        smtp_conn_id="smtp_alerts",
        from_email=SENDER,
        **extra,
    )


def received(webhooks: AlertWebhooksSandbox, inbox: Inbox) -> dict[str, list[str]]:
    """The text each channel received."""
    teams = [
        " ".join(block.get("text", "") for block in m["attachments"][0]["content"]["body"])
        + " "
        + " ".join(
            f"{f['title']}: {f['value']}"
            for b in m["attachments"][0]["content"]["body"]
            for f in b.get("facts", [])
        )
        for m in webhooks.teams[TEAMS_SIG]
    ]
    mails = []
    for envelope in inbox.messages:
        message = email.message_from_bytes(envelope.content)
        parts = [
            p.get_payload(decode=True).decode() for p in message.walk() if p.get_content_type() == "text/html"
        ]
        mails.append(f"{message['Subject']} {' '.join(parts)}")
    return {"slack": [m["text"] for m in webhooks.slack[SLACK_TOKEN]], "teams": teams, "email": mails}


# -- the block ------------------------------------------------------------------------------------


def test_the_block_splits_addresses_and_refuses_what_cannot_work() -> None:
    assert alerts_config().email_address == ["ops@example.com", "data@example.com"]
    with pytest.raises(ValidationError, match="at least one of slack_webhook_conn_id"):
        AlertsConfig(event_types=["failure"])
    with pytest.raises(ValidationError, match="not e-mail addresses"):
        AlertsConfig(email_address="ops, data@example.com")
    with pytest.raises(ValidationError, match="slack_webhook_url"):
        AlertsConfig(slack_webhook_url="https://hooks.slack.com/services/x")


def test_any_job_gets_failure_callbacks_and_an_alerts_task_after_its_last_task() -> None:
    config = {
        "type": "segment_export",
        "audience": "vip",
        "alerts": {"email_address": "ops@example.com", "event_types": ["failure", "rejects", "report"]},
    }
    dag = JobRun(config, job_id="alerted").dag
    assert dag.get_task("alerts").upstream_task_ids == {"report"}
    for task in dag.tasks:
        assert any(isinstance(cb, TaskFailureAlert) for cb in task.on_failure_callback or [])
    assert dag.get_task("alerts").report_task_ids == ["report"]
    plain = JobRun({k: v for k, v in config.items() if k != "alerts"}, job_id="plain").dag
    assert "alerts" not in plain.task_ids
    assert not any(isinstance(cb, TaskFailureAlert) for cb in plain.get_task("deliver").on_failure_callback)
    defaults = SegmentExportJob(type="segment_export", audience="vip", alerts={"email_address": "a@b.co"})
    assert defaults.alerts is not None and defaults.alerts.event_types == ["failure", "rejects"]
    only_failure = {**config, "alerts": {"email_address": "a@b.co", "event_types": ["failure"]}}
    assert "alerts" not in JobRun(only_failure, job_id="f").dag.task_ids


# -- the channels ---------------------------------------------------------------------------------


def test_a_task_failure_reaches_slack_teams_and_email_without_secrets(
    channels: AlertChannels,
    webhooks: AlertWebhooksSandbox,
    smtp: tuple[Inbox, int],
    caplog: pytest.LogCaptureFixture,
    capfd: Any,
) -> None:
    caplog.set_level(logging.DEBUG)
    ti = type("TI", (), {"task_id": "deliver", "try_number": 3, "dag_id": "lytics_segment_vip"})()
    error = ConnectionError(f"POST http://127.0.0.1/v1/batch failed {{odd braces}} ({SLACK_TOKEN[:4]}…)")
    TaskFailureAlert(channels)(make_context(ti=ti, exception=error))
    texts = received(webhooks, smtp[0])
    assert [len(v) for v in texts.values()] == [1, 1, 1]
    for text in (t[0] for t in texts.values()):
        assert "lytics_segment_vip" in text and "deliver failed" in text
        assert "ConnectionError" in text and "{odd braces}" in text
    assert "try: 3" in texts["slack"][0]
    assert sorted(smtp[0].messages[0].rcpt_tos) == ["data@example.com", "ops@example.com"]
    out, err = capfd.readouterr()
    everything = "\n".join([caplog.text, out, err, json.dumps(texts)])
    assert SLACK_TOKEN not in everything and TEAMS_SIG not in everything


def test_a_channel_that_fails_does_not_stop_the_others(
    channels: AlertChannels,
    webhooks: AlertWebhooksSandbox,
    smtp: tuple[Inbox, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_ALERTS",
        json.dumps(
            {
                "conn_type": "slackwebhook",
                "host": f"{webhooks.base_url}/services",
                "password": "T1/B1/revoked",
            }
        ),
    )
    results = send_alert(channels, JobAlert("Lytics job x: run report"), make_context())
    assert results["slack"] and "no_service" in results["slack"] and "revoked" not in results["slack"]
    assert results["microsoft_teams"] is None and results["email"] is None
    assert len(smtp[0].messages) == 1


# -- rejects and report after the run --------------------------------------------------------------


def test_count_rejected_sums_every_rejected_count_of_a_report() -> None:
    report = {
        "scan_rejected": 2,
        "delivery": {"rejected": 3, "outcomes": {"enter:Rejected": 3}},
        "dry_run": False,
    }
    assert count_rejected({"report": report}) == 5


@pytest.mark.parametrize(("threshold", "alerted"), [(4, True), (5, False)])
def test_rejects_above_the_threshold_alert(
    channels: AlertChannels,
    webhooks: AlertWebhooksSandbox,
    smtp: tuple[Inbox, int],
    threshold: int,
    alerted: bool,
) -> None:
    report = {
        "members": 10,
        "scan_rejected": 2,
        "delivery": {"rejected": 3, "rejects_file": "/x/rejects.jsonl"},
    }
    op = RunAlertsOperator(
        task_id="alerts",
        channels=channels,
        event_types=["rejects"],
        rejects_threshold=threshold,
        report_task_ids=["report"],
    )
    result = op.execute(make_context(xcoms={"report": report}))
    texts = received(webhooks, smtp[0])
    if alerted:
        assert (
            "5 rows rejected (threshold 4)" in texts["slack"][0] and "/x/rejects.jsonl" in texts["email"][0]
        )
        assert len(result["alerts"]) == 1
    else:
        assert texts == {"slack": [], "teams": [], "email": []} and result == {"alerts": {}}


def test_no_channel_taking_an_alert_fails_the_task(
    channels: AlertChannels, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = AlertChannels(slack_webhook_conn_id="slack_alerts")
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_ALERTS",
        json.dumps({"conn_type": "slackwebhook", "host": "http://127.0.0.1:9", "password": "T/B/x"}),
    )
    op = RunAlertsOperator(
        task_id="alerts",
        channels=broken,
        event_types=["report"],
        rejects_threshold=0,
        report_task_ids=["report"],
    )
    with pytest.raises(AlertsNotSent):
        op.execute(make_context(xcoms={"report": {"members": 1}}))


def test_a_whole_run_with_rejects_sends_the_rejects_alert_and_the_report(
    channels: AlertChannels,
    webhooks: AlertWebhooksSandbox,
    smtp: tuple[Inbox, int],
    ga4_and_lytics: tuple[Any, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    ga4, lytics = ga4_and_lytics
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    ga4.add_stream("G-ALERTS", "mpSecret0001")
    monkeypatch.setenv("AIRFLOW_CONN_GA4_DEFAULT", json.dumps(ga4.connection("mpSecret0001")))
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics.base_url))
    config = {
        "type": "ga4_audience_export",
        "audience": "vip",
        "measurement_id": "G-ALERTS",
        "client_id": "_uid",
        "export_scalar_fields": ["scores"],  # an object: every member breaks VALUE_INVALID
        "alerts": alerts_config(
            event_types=["failure", "rejects", "report"], rejects_threshold=3
        ).model_dump(),
    }
    xcoms = JobRun(config, job_id="ga4_alerted").run()
    assert xcoms["report"]["delivery"]["rejected"] == 12
    texts = received(webhooks, smtp[0])
    assert len(texts["slack"]) == 2 and len(texts["email"]) == 2 and len(texts["teams"]) == 2
    assert "12 rows rejected (threshold 3)" in texts["slack"][0]
    assert "run report" in texts["slack"][1] and "members: 12" in texts["slack"][1]
    assert "mpSecret0001" not in json.dumps(texts)


def test_the_scheduler_sees_the_callbacks_and_the_alerts_task() -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    config = {"type": "segment_export", "audience": "vip", "alerts": {"email_address": "ops@example.com"}}
    dag = DagSerialization.from_dict(DagSerialization.to_dict(JobRun(config, job_id="serialized").dag))
    assert dag.get_task("alerts").upstream_task_ids == {"report"}
    assert all(task.has_on_failure_callback for task in dag.tasks)
