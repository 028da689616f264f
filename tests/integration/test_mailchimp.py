"""Mailchimp: export and import jobs against the Marketing API stand-in (``lytics_sandbox.mailchimp``).

The stand-in follows the Mailchimp Marketing API reference, https://mailchimp.com/developer/marketing/api/
(OpenAPI copy: ``api-evangelist/mailchimp``, ``openapi/_original/mailchimp-marketing-api-openapi.yml``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lytics_provider.hooks.mailchimp import MailchimpHook, data_center
from lytics_provider.integrations.catalog import read_integration, todo_entries
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.pipeline import http
from lytics_provider.transfers.lytics_to_mailchimp import LyticsToMailchimpOperator
from lytics_sandbox.lytics import LyticsSandbox
from lytics_sandbox.mailchimp import MailchimpSandbox
from lytics_sandbox.synth import SyntheticAccount
from tests.conformance.runner import JobRun

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = [REPO / "include" / "jobs" / f"mailchimp_{name}.yaml" for name in ("export", "import")]
DECLARATION = REPO / "lytics_provider" / "integrations" / "mailchimp.yaml"
AUDIENCE = "mc_audience"


@pytest.fixture(scope="session")
def mailchimp_stand_in() -> Iterator[MailchimpSandbox]:
    with MailchimpSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def lytics_account() -> SyntheticAccount:
    return SyntheticAccount(seed=5, audiences={"all": 200, AUDIENCE: 60}, invalid_email_rate=0.05)


@pytest.fixture
def mc(
    mailchimp_stand_in: MailchimpSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[MailchimpSandbox]:
    sandbox = mailchimp_stand_in
    sandbox.audiences.clear()
    sandbox.batches.clear()
    sandbox.campaigns.clear()
    sandbox.activity.clear()
    sandbox.reset_counters()
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIRFLOW_CONN_MAILCHIMP_DEFAULT", json.dumps(sandbox.connection()))
    monkeypatch.setattr(http.RetryPolicy, "backoff", lambda self, attempt: 0.0)
    monkeypatch.setattr(LyticsToMailchimpOperator, "sleep", staticmethod(lambda seconds: None))
    yield sandbox
    sandbox.faults.clear()
    sandbox.polls_before_finished = 0
    sandbox.latency = 0.0


def export_config(list_ref: str, **extra: Any) -> dict[str, Any]:
    return {"type": "mailchimp_export", "audience": AUDIENCE, "mailchimp_list": list_ref, **extra}


def valid_emails(lytics: LyticsSandbox) -> set[str]:
    return {m["email"].lower() for m in lytics.expected_members(AUDIENCE) if "@" in (m.get("email") or "")}


def test_registration_and_examples() -> None:
    assert todo_entries(read_integration(DECLARATION)) == []
    jobs, errors = load_job_files(EXAMPLES)
    assert errors == []
    assert [job.config.type for job in jobs] == ["mailchimp_export", "mailchimp_import"]


def test_test_button_and_data_center(mc: MailchimpSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message = MailchimpHook().test_connection()
    assert ok and "Everything's Chimpy!" in message
    monkeypatch.setenv("AIRFLOW_CONN_MAILCHIMP_DEFAULT", json.dumps(mc.connection("wrongkey-us21")))
    ok, message = MailchimpHook().test_connection()
    assert not ok and "refused the credentials" in message and "API key field" in message
    assert "wrongkey" not in message
    assert data_center("abc123-us21") == "us21"
    with pytest.raises(ValueError, match="data center"):
        data_center("nodatacenter")


def test_export_tags_members_never_resubscribes_and_untags_exits(
    mc: MailchimpSandbox, lytics: LyticsSandbox
) -> None:
    audience = mc.add_audience("Newsletter")
    first = sorted(valid_emails(lytics))
    mc.add_member(audience.id, first[0], status="unsubscribed")
    mc.add_member(audience.id, first[1], status="cleaned")
    mc.add_member(audience.id, "outsider@example.com", status="subscribed")

    run = JobRun(export_config("Newsletter", tag="VIP"), job_id="mc_export")
    xcoms = run.run()
    assert mc.tagged(audience.id, "VIP") == set(first)
    statuses = {m.email_address: m.status for m in audience.members.values()}
    assert statuses[first[0]] == "unsubscribed" and statuses[first[1]] == "cleaned"
    assert statuses["outsider@example.com"] == "subscribed"
    assert {statuses[e] for e in first[2:]} == {"subscribed"}
    delivery = xcoms["deliver"]
    rejects = [json.loads(line) for line in Path(delivery["rejects_file"]).read_text().splitlines()]
    invalid = [m for m in lytics.expected_members(AUDIENCE) if "@" not in (m.get("email") or "")]
    assert len(rejects) == len(invalid) > 0 and all(r["reason"] for r in rejects)
    assert delivery["batches"] == 1 and mc.calls_to("batch_post") == 1

    lytics.set_churn(AUDIENCE, exits=3, enters=2, changes=0)
    lytics.set_version(AUDIENCE, 1)
    mc.reset_counters()
    report = JobRun(export_config("Newsletter", tag="VIP"), job_id="mc_export", day=24).run()["report"]
    assert (report["enters"], report["exits"]) == (2, 3)
    assert mc.calls_to("batch_post") == 1  # enters and exits in one Batch-endpoint request
    assert mc.tagged(audience.id, "VIP") == valid_emails(lytics)
    assert mc.calls["batched member_put"] == len(valid_emails(lytics) - set(first))
    assert "outsider@example.com" in {m.email_address for m in audience.members.values()}


def test_churn_run_reuses_the_kept_audience_id(mc: MailchimpSandbox, lytics: LyticsSandbox) -> None:
    audience = mc.add_audience("Newsletter")
    JobRun(export_config("Newsletter", tag="VIP"), job_id="mc_kept").run()
    lytics.set_churn(AUDIENCE, exits=3, enters=2, changes=0)
    lytics.set_version(AUDIENCE, 1)
    mc.reset_counters()
    JobRun(export_config("Newsletter", tag="VIP"), job_id="mc_kept", day=24).run()
    assert not list(mc.logged("GET", r"/3\.0/lists"))
    assert mc.tagged(audience.id, "VIP") == valid_emails(lytics)


def test_deleted_audience_is_looked_up_again(mc: MailchimpSandbox, lytics: LyticsSandbox) -> None:
    old = mc.add_audience("Newsletter")
    JobRun(export_config("Newsletter", tag="VIP"), job_id="mc_gone").run()
    del mc.audiences[old.id]
    new = mc.add_audience("Newsletter")
    lytics.set_churn(AUDIENCE, exits=3, enters=2, changes=0)
    lytics.set_version(AUDIENCE, 1)
    mc.reset_counters()
    JobRun(export_config("Newsletter", tag="VIP"), job_id="mc_gone", day=24).run()
    assert len(list(mc.logged("GET", r"/3\.0/lists"))) == 1
    assert mc.calls_to("batch_post") == 2  # sent to the kept id (404), then to the audience found
    assert mc.tagged(new.id, "VIP") == valid_emails(lytics) & {m.email_address for m in new.members.values()}
    assert mc.tagged(new.id, "VIP")

    mc.reset_counters()
    lytics.set_version(AUDIENCE, 2)
    JobRun(export_config("Newsletter", tag="VIP"), job_id="mc_gone", day=25).run()
    assert not list(mc.logged("GET", r"/3\.0/lists"))  # the id found is kept


def test_retry_reattaches_to_the_submitted_batch(mc: MailchimpSandbox, lytics: LyticsSandbox) -> None:
    audience = mc.add_audience("Newsletter")
    run = JobRun(export_config(audience.id, tag="VIP", batch_size=20), job_id="mc_retry")
    run.run(until="scan")
    mc.faults.add("5xx", status=503, path_regex=r"/3\.0/batches/[^/]+$", method="GET", after=1, times=None)
    with pytest.raises(http.ServiceError):
        run.run()
    submitted = mc.calls_to("batch_post")
    assert submitted == 2  # the first batch finished; the second was submitted, then its polls failed
    mc.faults.clear()
    run.run()
    emails = valid_emails(lytics)
    assert mc.tagged(audience.id, "VIP") == emails
    assert mc.calls_to("batch_post") == submitted + (len(emails) - 1) // 20 - 1
    assert mc.calls["batched member_put"] == len(emails)


def test_errored_operations_are_read_from_the_results_archive(
    mc: MailchimpSandbox, lytics: LyticsSandbox
) -> None:
    audience = mc.add_audience("Newsletter")
    JobRun(export_config(audience.id, tag="VIP", email_field="email"), job_id="mc_results").run()
    assert mc.calls_to("batch_results") == 0  # no operation errored: the archive is not fetched
    hook = MailchimpHook()
    batch = hook.start_batch(
        [{"method": "PUT", "path": f"/lists/{audience.id}/members/00", "body": "{}", "operation_id": "bad"}]
    )
    status = hook.wait_for_batch(batch, 0.0, 5.0, sleep=lambda s: None)
    results = hook.batch_results(status["response_body_url"])
    assert [(r["operation_id"], r["status_code"]) for r in results] == [("bad", 400)]
    assert json.loads(results[0]["response"])["title"] == "Invalid Resource"


def test_429_is_retried_and_its_problem_body_read(mc: MailchimpSandbox) -> None:
    mc.faults.add("429", path_regex=r"/3\.0/ping")
    assert MailchimpHook().check_call() == "Everything's Chimpy!"
    assert [e["status"] for e in mc.logged(path_regex="/ping")] == [429, 200]
    mc.faults.add("5xx", status=503, path_regex=r"/3\.0/ping", times=None)
    with pytest.raises(http.ServiceError, match="503"):
        MailchimpHook(retry_policy=http.RetryPolicy(max_attempts=2)).check_call()


def test_no_more_than_ten_connections_in_flight(mc: MailchimpSandbox) -> None:
    mc.latency = 0.05
    hooks = [MailchimpHook() for _ in range(16)]
    errors: list[BaseException] = []

    def ping(hook: MailchimpHook) -> None:
        try:
            for _ in range(3):
                hook.call("GET", "/ping")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=ping, args=(hook,)) for hook in hooks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert mc.throttled == 0 and mc.peak_in_flight == 10
    assert mc.calls_to("ping") == 48


def test_import_subscribers_and_activity_checkpointed(mc: MailchimpSandbox, lytics: LyticsSandbox) -> None:
    audience = mc.add_audience("Newsletter")
    for i in range(25):
        mc.add_member(audience.id, f"user{i}@example.com", FNAME=f"First{i}")
    rows = [
        {
            "email_address": "user1@example.com",
            "activity": [
                {"action": "open", "timestamp": "2026-11-20T10:00:00+00:00"},
                {"action": "click", "timestamp": "2026-11-20T10:01:00+00:00", "url": "https://example.com/a"},
            ],
        },
        {
            "email_address": "user2@example.com",
            "activity": [{"action": "bounce", "type": "hard", "timestamp": "2026-11-20T11:00:00+00:00"}],
        },
    ]
    mc.add_campaign(audience.id, "November", rows)
    config = {"type": "mailchimp_import", "mailchimp_list": "Newsletter", "batch_size": 10}
    lytics.faults.add(
        "5xx", status=503, path_regex=r"/collect/json/mailchimp_subscribers", after=1, times=None
    )
    run = JobRun(config, job_id="mc_import")
    with pytest.raises(http.ServiceError):
        run.run()
    lytics.faults.clear()
    xcoms = run.run()
    subscribers = lytics.collected("mailchimp_subscribers")
    assert sorted(r["email"] for r in subscribers) == sorted(f"user{i}@example.com" for i in range(25))
    assert {r["first_name"] for r in subscribers if r["email"] == "user3@example.com"} == {"First3"}
    assert all(r["listid"] == audience.id and r["liststatus"] == "subscribed" for r in subscribers)
    activity = lytics.collected("mailchimp_activity")
    assert sorted(r["action"] for r in activity) == ["bounce", "click", "open"]
    assert xcoms["activity"]["actions"] == 3

    newest = max(m.last_changed for m in audience.members.values())
    mc.add_member(audience.id, "late@example.com").last_changed = newest  # the same second as the watermark
    mc.activity[next(iter(mc.activity))][0]["activity"].append(
        {"action": "open", "timestamp": "2026-11-20T11:00:00+00:00"}  # the newest imported action's second
    )
    JobRun(config, job_id="mc_import", day=24).run()
    assert len(lytics.collected("mailchimp_subscribers")) == 26
    assert [r["email"] for r in lytics.collected("mailchimp_subscribers")[25:]] == ["late@example.com"]
    assert len(lytics.collected("mailchimp_activity")) == 4
