"""SendGrid: export and import jobs against the Marketing Campaigns stand-in (``lytics_sandbox.sendgrid``).

The stand-in follows SendGrid's OpenAPI documents, https://github.com/twilio/sendgrid-oai
(``spec/json/tsg_mc_contacts_v3.json``, ``tsg_mc_custom_fields_v3.json``, ``tsg_mc_segments_2.0_v3.json``,
``tsg_mc_lists_v3.json``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lytics_provider.hooks.sendgrid import SendGridHook, field_chunks
from lytics_provider.integrations.catalog import read_integration, todo_entries
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.pipeline import http
from lytics_provider.transfers.lytics_to_sendgrid import LyticsToSendGridOperator
from lytics_provider.transfers.sendgrid_to_lytics import SendGridUsersToLyticsOperator
from lytics_sandbox.lytics import LyticsSandbox
from lytics_sandbox.sendgrid import SendGridSandbox
from lytics_sandbox.synth import SyntheticAccount
from tests.conformance.runner import JobRun

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = [REPO / "include" / "jobs" / f"sendgrid_{name}.yaml" for name in ("export", "import")]
DECLARATION = REPO / "lytics_provider" / "integrations" / "sendgrid.yaml"
AUDIENCE = "sg_audience"


@pytest.fixture(scope="session")
def sendgrid_stand_in() -> Iterator[SendGridSandbox]:
    with SendGridSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def lytics_account() -> SyntheticAccount:
    return SyntheticAccount(seed=9, audiences={"everyone": 120, AUDIENCE: 60}, invalid_email_rate=0.05)


@pytest.fixture
def sg(
    sendgrid_stand_in: SendGridSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[SendGridSandbox]:
    sandbox = sendgrid_stand_in
    sandbox.reset()
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIRFLOW_CONN_SENDGRID_DEFAULT", json.dumps(sandbox.connection()))
    monkeypatch.setattr(http.RetryPolicy, "backoff", lambda self, attempt: 0.0)
    for operator in (LyticsToSendGridOperator, SendGridUsersToLyticsOperator):
        monkeypatch.setattr(operator, "sleep", staticmethod(lambda seconds: None))
    yield sandbox
    sandbox.rate_limit = None
    sandbox.polls_before_completed = 0


def export_config(**extra: Any) -> dict[str, Any]:
    return {"type": "sendgrid_export", "audience": AUDIENCE, "segment_name": "VIP", **extra}


def valid_emails(lytics: LyticsSandbox, slug: str = AUDIENCE) -> set[str]:
    return {m["email"].lower() for m in lytics.expected_members(slug) if "@" in (m.get("email") or "")}


def segment_id(sg: SendGridSandbox, name: str) -> str:
    return next(s["id"] for s in sg.segments.values() if s["name"] == name)


def test_registration_and_examples() -> None:
    assert todo_entries(read_integration(DECLARATION)) == []
    jobs, errors = load_job_files(EXAMPLES)
    assert errors == []
    assert [job.config.type for job in jobs] == ["sendgrid_export", "sendgrid_import"]


def test_test_button(sg: SendGridSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    assert SendGridHook().test_connection() == (
        True,
        f"Connected to SendGrid at {sg.base_url}: 2 scopes on this API key.",
    )
    monkeypatch.setenv("AIRFLOW_CONN_SENDGRID_DEFAULT", json.dumps(sg.connection("SG.wrong-key")))
    ok, message = SendGridHook().test_connection()
    assert not ok and "refused the credentials" in message and "SG.wrong-key" not in message


def test_export_builds_the_segment_and_never_removes_contacts(
    sg: SendGridSandbox, lytics: LyticsSandbox
) -> None:
    list_id = sg.add_list("Newsletter")
    xcoms = JobRun(export_config(sendgrid_list="Newsletter"), job_id="sg_export").run()
    first = valid_emails(lytics)
    vip = segment_id(sg, "VIP")
    audience_id = lytics.account.audience(AUDIENCE).id
    assert sg.segments[vip]["query_dsl"].endswith(f"WHERE lytics_segments LIKE '%{audience_id}%'")
    assert sg.segments[vip]["parent_list_ids"] == [list_id]
    assert sg.segment_members(vip) == first
    assert all(sg.contacts[e].list_ids == {list_id} for e in first)
    everyone_id = lytics.account.audience("everyone").id
    both = first & valid_emails(lytics, "everyone")
    assert both and all(everyone_id in sg.field_value(sg.contacts[e], "lytics_segments") for e in both)
    rejects = [json.loads(line) for line in Path(xcoms["deliver"]["rejects_file"]).read_text().splitlines()]
    assert len(rejects) == 60 - len(first) and all(r["reason"] for r in rejects)
    assert sg.upserted == [len(first)]

    lytics.set_churn(AUDIENCE, exits=4, enters=3, changes=0)
    lytics.set_version(AUDIENCE, 1)
    report = JobRun(export_config(sendgrid_list="Newsletter"), job_id="sg_export", day=24).run()["report"]
    assert (report["enters"], report["exits"]) == (3, 4)
    second = valid_emails(lytics)
    assert sg.segment_members(vip) == second
    assert set(sg.contacts) == first | second  # exited contacts stay in the account and on the list
    assert sum(sg.upserted[1:]) == len(first ^ second)
    assert len(sg.upserted) == 3  # with a list, exits go in their own upsert (list_ids would add them)


def test_churn_sends_enters_and_exits_in_one_upsert(sg: SendGridSandbox, lytics: LyticsSandbox) -> None:
    JobRun(export_config(), job_id="sg_mixed").run()
    first = valid_emails(lytics)
    lytics.set_churn(AUDIENCE, exits=4, enters=3, changes=0)
    lytics.set_version(AUDIENCE, 1)
    JobRun(export_config(), job_id="sg_mixed", day=24).run()
    second = valid_emails(lytics)
    assert sg.upserted == [len(first), len(first ^ second)]
    assert sg.segment_members(segment_id(sg, "VIP")) == second


def test_overflow_field_widens_the_segment(sg: SendGridSandbox, lytics: LyticsSandbox) -> None:
    JobRun(export_config(max_field_chars=33), job_id="sg_overflow").run()
    vip = segment_id(sg, "VIP")
    names = sorted(f["name"] for f in sg.custom_fields.values())
    assert names == ["lytics_segments", "lytics_segments_1"]
    assert "lytics_segments_1 LIKE" in sg.segments[vip]["query_dsl"]
    assert sg.segment_members(vip) == valid_emails(lytics)
    assert field_chunks(["a" * 32, "b" * 32, "c" * 32], 65) == ["a" * 32 + "," + "b" * 32, "c" * 32]


def set_up_reads(sg: SendGridSandbox) -> list[str]:
    return [e["path"] for e in sg.logged("GET", r"/field_definitions|/segments")]


def test_churn_run_reuses_the_kept_field_and_segment_ids(sg: SendGridSandbox, lytics: LyticsSandbox) -> None:
    JobRun(export_config(), job_id="sg_kept").run()
    lytics.set_churn(AUDIENCE, exits=4, enters=3, changes=0)
    lytics.set_version(AUDIENCE, 1)
    sg.reset_counters()
    JobRun(export_config(), job_id="sg_kept", day=24).run()
    assert set_up_reads(sg) == [] and not list(sg.logged(path_regex="/segments|/field_definitions"))
    assert [e["method"] for e in sg.logged(path_regex="/marketing/contacts")] == ["PUT", "GET"]
    assert sg.segment_members(segment_id(sg, "VIP")) == valid_emails(lytics)


def test_deleted_field_and_segment_are_looked_up_again(sg: SendGridSandbox, lytics: LyticsSandbox) -> None:
    JobRun(export_config(), job_id="sg_gone").run()
    sg.custom_fields.clear()
    sg.segments.clear()
    lytics.set_churn(AUDIENCE, exits=4, enters=3, changes=0)
    lytics.set_version(AUDIENCE, 1)
    sg.reset_counters()
    JobRun(export_config(), job_id="sg_gone", day=24).run()
    assert len(set_up_reads(sg)) == 2  # the upsert answered the field does not exist: fields, segments read
    assert [f["name"] for f in sg.custom_fields.values()] == ["lytics_segments"]
    members = sg.segment_members(segment_id(sg, "VIP"))
    assert members and members <= valid_emails(lytics)  # the recreated field holds the churn run's enters

    sg.reset_counters()
    lytics.set_churn(AUDIENCE, exits=0, enters=0, changes=0)
    lytics.set_version(AUDIENCE, 2)
    sg.segments.clear()  # gone again; an overflow field makes its PATCH answer 404
    JobRun(export_config(max_field_chars=33), job_id="sg_gone", day=25).run()
    assert [e["status"] for e in sg.logged("PATCH", "/segments")] == [404]
    assert "lytics_segments_1 LIKE" in sg.segments[segment_id(sg, "VIP")]["query_dsl"]


def test_dry_run_creates_nothing(sg: SendGridSandbox, lytics: LyticsSandbox) -> None:
    report = JobRun(export_config(), job_id="sg_dry", dry_run=True).run()["report"]
    assert report["dry_run"] is True
    assert sg.contacts == {} and sg.segments == {} and sg.custom_fields == {}


def test_retry_reattaches_to_the_upsert_job(sg: SendGridSandbox, lytics: LyticsSandbox) -> None:
    sg.polls_before_completed = 1
    run = JobRun(export_config(batch_size=20), job_id="sg_retry")
    run.run(until="scan")
    sg.faults.add("5xx", status=503, path_regex=r"/contacts/imports/", method="GET", after=2, times=None)
    with pytest.raises(http.ServiceError):
        run.run()
    assert len(sg.upserted) == 2
    sg.faults.clear()
    run.run()
    emails = valid_emails(lytics)
    assert sg.segment_members(segment_id(sg, "VIP")) == emails
    assert sum(sg.upserted) == len(emails)


def test_429_waits_for_the_rate_limit_reset(sg: SendGridSandbox) -> None:
    now = [time.time()]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds
        sg.rate_limit = None  # the window has passed

    sg.rate_limit = 1
    hook = SendGridHook(clock=lambda: now[0], sleep=sleep)
    hook.check_call()
    hook.check_call()
    assert sg.throttled == 1
    assert any(55 <= w <= 62 for w in waits)  # until the window's X-RateLimit-Reset, about a minute away


def test_import_users_resumes_after_the_acknowledged_batch(
    sg: SendGridSandbox, lytics: LyticsSandbox
) -> None:
    list_id = sg.add_list("Newsletter")
    hook = SendGridHook()
    hook.upsert_contacts(
        [{"email": f"user{i}@example.com", "first_name": f"U{i}"} for i in range(120)], [list_id]
    )
    hook.upsert_contacts([{"email": "other@example.com"}], [])
    config = {"type": "sendgrid_import", "import_lists": ["Newsletter"], "batch_size": 25}
    lytics.faults.add("5xx", status=503, path_regex=r"/collect/json/sendgrid_users", after=2, times=None)
    run = JobRun(config, job_id="sg_import")
    with pytest.raises(http.ServiceError):
        run.run()
    lytics.faults.clear()
    report = run.run()["users"]
    users = lytics.collected("sendgrid_users")
    assert sorted(u["email"] for u in users) == sorted(f"user{i}@example.com" for i in range(120))
    assert all(u["list_ids"] == [list_id] for u in users)
    assert report["files"] == 3 and sg.calls_to("export_post") == 1
