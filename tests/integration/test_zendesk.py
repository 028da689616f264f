# ruff: noqa: F811 - pytest fixtures imported from conftest_warehouse
"""Zendesk Export Users and Import Tickets and Users against the HTTPS stand-in, through ``ZendeskHook``.

The stand-in (``lytics_sandbox/zendesk.py``) follows Zendesk's published references:
https://developer.zendesk.com/api-reference/ticketing/users/users/ (create_or_update_many),
https://developer.zendesk.com/api-reference/ticketing/ticket-management/job_statuses/,
https://developer.zendesk.com/api-reference/ticketing/ticket-management/incremental_exports/ and
https://developer.zendesk.com/api-reference/introduction/rate-limits/ (429 + Retry-After).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.zendesk import ZendeskApiHook
from lytics_provider.integrations.catalog import read_integration, todo_entries
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.pipeline.http import ServiceError
from lytics_provider.transfers.lytics_to_zendesk import GROUP_FIELD, LyticsToZendeskUsersOperator
from lytics_provider.transfers.zendesk_to_lytics import ZendeskToLyticsOperator
from lytics_sandbox.faults import FaultRule
from lytics_sandbox.zendesk import ZendeskSandbox
from tests.helpers import make_context, run_task
from tests.integration.conftest_warehouse import lytics_env, scanned_context  # noqa: F401 - fixtures

REPO = Path(__file__).resolve().parents[2]
DECLARATION = REPO / "lytics_provider" / "integrations" / "zendesk.yaml"


@pytest.fixture(scope="session")
def zendesk_stand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZendeskSandbox]:
    from lytics_sandbox.tls import local_tls

    tls = local_tls(tmp_path_factory.mktemp("zendesk_tls"))
    sandbox = ZendeskSandbox(incremental_per_minute=None)
    sandbox.ssl_context = tls.server_context
    sandbox.ca_file = tls.ca_file  # type: ignore[attr-defined]
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def zendesk(zendesk_stand: ZendeskSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ZendeskSandbox:
    zendesk_stand.users.clear()
    zendesk_stand.tickets.clear()
    zendesk_stand.writes.clear()
    zendesk_stand.faults.clear()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(zendesk_stand.ca_file))  # type: ignore[attr-defined]
    monkeypatch.setenv("AIRFLOW_CONN_ZENDESK_DEFAULT", json.dumps(zendesk_stand.connection()))
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    return zendesk_stand


def _export(**kwargs) -> LyticsToZendeskUsersOperator:
    return LyticsToZendeskUsersOperator(task_id="deliver", job_id="job", poll_interval=0.0, **kwargs)


def _run(context: dict, **kwargs) -> dict:
    """``deliver`` then ``report`` (which makes the snapshot the next run's baseline)."""
    from lytics_provider.operators.lytics import LyticsCommitRunOperator

    report = run_task(_export(**kwargs), context)
    run_task(LyticsCommitRunOperator(task_id="report", job_id="job"), context)
    return report


def test_registration_and_examples() -> None:
    assert todo_entries(read_integration(DECLARATION)) == []
    jobs, errors = load_job_files(sorted((REPO / "include" / "jobs").glob("zendesk_*.yaml")))
    assert errors == [] and sorted(j.config.type for j in jobs) == ["zendesk_export", "zendesk_import"]


def test_hook_speaks_https_through_zendesk_hook_and_reports_a_wrong_key(zendesk, monkeypatch) -> None:
    assert ZendeskApiHook().test_connection() == (True, "Connected as agent@example.com")
    assert ZendeskApiHook()._url.startswith("https://127.0.0.1:")
    monkeypatch.setenv("AIRFLOW_CONN_ZENDESK_DEFAULT", json.dumps(zendesk.connection("wrong-key")))
    ok, message = ZendeskApiHook().test_connection()
    assert not ok and "401" in message and "wrong-key" not in message


def test_429_is_waited_out_by_retry_after(zendesk) -> None:
    zendesk.faults.add(FaultRule("429", path_regex=r"/users/me", retry_after=1, times=1))
    hook = ZendeskApiHook()
    assert hook.request("GET", "/api/v2/users/me.json")["user"]["id"] == 1
    assert hook.throttled == 1 and hook.calls == 2


def test_a_call_that_arrives_late_does_not_let_a_window_later_one_through(
    zendesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Zendesk counts a call on arrival: the budget counts it from its answer, never earlier."""
    monkeypatch.setattr(zendesk, "per_minute", 2)
    monkeypatch.setattr(zendesk, "window", 1.0)
    monkeypatch.setattr(zendesk, "_calls", type(zendesk._calls)())
    monkeypatch.setattr(ZendeskApiHook, "budget_window", 1.0)
    zendesk.faults.add(FaultRule("slow", path_regex=r"/users/me", delay=0.5, times=1))
    hook = ZendeskApiHook(requests_per_minute=2)
    for _ in range(3):
        assert hook.request("GET", "/api/v2/users/me.json")["user"]["id"] == 1
    assert hook.throttled == 0 and hook.calls == 3


def test_export_sets_member_of_lytics_group_in_batches_of_100_and_rejects_bad_emails(
    lytics_env, zendesk
) -> None:
    report = run_task(_export(export_fields=["score_engagement"]), scanned_context("high_value"))
    members = lytics_env.expected_members("high_value")
    valid = {m["email"].lower() for m in members if "@" in (m.get("email") or "")[1:-1]}
    held = zendesk.members_with(GROUP_FIELD, "high_value") | zendesk.members_with(GROUP_FIELD, "High Value")
    assert held and held <= valid
    assert max(zendesk.writes) <= 100
    assert len(zendesk.writes) == -(-sum(zendesk.writes) // 100)  # full batches of 100
    assert json.dumps(report)  # the run report is JSON


def test_exit_clears_the_field_only_for_members_the_job_set(lytics_env, zendesk) -> None:
    _run(scanned_context("high_value", day=22))
    value = next(iter({u["user_fields"].get(GROUP_FIELD) for u in zendesk.users.values()} - {None}))
    before = zendesk.members_with(GROUP_FIELD, value)
    outsider = zendesk.add_user("outsider@example.com", "Out", 1, user_fields={GROUP_FIELD: value})
    lytics_env.set_version("high_value", 1)
    report = _run(scanned_context("high_value", day=23))
    assert report["planned"]["removes"] > 0 and report["planned"]["adds"] < 500  # only the churn
    after = zendesk.members_with(GROUP_FIELD, value)
    assert after != before and outsider["email"] in after  # a user the job did not set keeps its value
    cleared = {e for e, u in zendesk.users.items() if u["user_fields"].get(GROUP_FIELD) == ""}
    assert cleared and cleared <= before


def test_bad_credentials_fail_fast(lytics_env, zendesk, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ZENDESK_DEFAULT", json.dumps(zendesk.connection("revoked")))
    with pytest.raises(AirflowFailException):
        run_task(_export(), scanned_context("high_value"))


def test_import_reads_both_cursors_and_commits_after_lytics_accepted(lytics_env, zendesk) -> None:
    for i in range(25):
        user = zendesk.add_user(f"u{i}@example.com", f"User {i}", 1_767_225_600 + i)
        zendesk.add_ticket(f"Ticket {i}", user["id"], 1_767_225_600 + i)
    op = ZendeskToLyticsOperator(task_id="import", job_id="zd_import", per_page=10)
    lytics_env.faults.add(FaultRule("5xx", path_regex="/collect/json/zendesk_users", after=1, times=None))
    with pytest.raises(ServiceError):
        run_task(op, make_context())
    lytics_env.faults.clear()
    report = run_task(op, make_context(run_id="retry"))
    users = [r["email"] for r in lytics_env.collected("zendesk_users")]
    assert users == [f"u{i}@example.com" for i in range(25)]  # first page once, then the rest
    assert len(lytics_env.collected("zendesk_tickets")) == 25
    assert report["users"]["pages"] == 2 and report["tickets"]["pages"] == 3

    zendesk.add_user("late@example.com", "Late", 1_767_300_000)
    again = run_task(op, make_context(run_id="next"))
    assert again["users"]["records"] == 1 and again["tickets"]["records"] == 0
