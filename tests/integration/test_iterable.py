"""Iterable: the list hook and stand-in, subscribe / unsubscribe runs, rejects, the config.

The stand-in follows https://api.iterable.com/api/docs (see ``lytics_sandbox.iterable``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.iterable import IterableHook, failed_identifiers
from lytics_provider.integrations.catalog import read_integration, todo_entries
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.jobs.types.iterable import IterableExportJob
from lytics_provider.pipeline import http
from lytics_sandbox.iterable import IterableSandbox
from lytics_sandbox.synth import SyntheticAccount
from tests.conformance.runner import JobRun
from tests.helpers import serve_connection

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "include" / "jobs" / "iterable_export.yaml"
DECLARATION = REPO / "lytics_provider" / "integrations" / "iterable.yaml"
KEY = "iterable-api-key-0123456789abcdef"
AUDIENCE = "vip_buyers"
LIST = "Lytics VIP"


@pytest.fixture(scope="module")
def iterable_stand() -> Iterator[IterableSandbox]:
    with IterableSandbox(api_keys=(KEY,)) as sandbox:
        yield sandbox


@pytest.fixture
def lytics_account() -> SyntheticAccount:
    return SyntheticAccount(seed=5, audiences={"all": 200, AUDIENCE: 40}, invalid_email_rate=0.1)


@pytest.fixture
def stand(
    iterable_stand: IterableSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[IterableSandbox]:
    iterable_stand.reset()
    serve_connection(monkeypatch, tmp_path, "iterable_default", iterable_stand.connection(KEY))
    yield iterable_stand
    iterable_stand.faults.clear()


def config(**extra: Any) -> dict[str, Any]:
    return {"type": "iterable_export", "audience": AUDIENCE, "list_name": LIST, "batch_size": 7, **extra}


def valid(lytics: Any) -> set[str]:
    return {f"email:{m['email'].lower()}" for m in lytics.expected_members(AUDIENCE) if "@" in m["email"]}


def test_registration_is_complete() -> None:
    assert todo_entries(read_integration(DECLARATION)) == []


def test_example_config_loads_and_builds_scan_deliver_report() -> None:
    jobs, errors = load_job_files([EXAMPLE])
    assert errors == []
    run = JobRun(jobs[0].config.model_dump(exclude_defaults=False), job_id="iterable_example")
    assert sorted(run.dag.task_ids) == ["deliver", "report", "scan"]
    assert {"email", "user_id", "first_name"} <= set(run.dag.get_task("scan").fields)


def test_config_errors_name_the_fix() -> None:
    with pytest.raises(ValueError, match="set list_id"):
        IterableExportJob(type="iterable_export", audience=AUDIENCE)
    with pytest.raises(ValueError, match="prefer_user_id needs user_id_field"):
        IterableExportJob(type="iterable_export", audience=AUDIENCE, list_id=5, prefer_user_id=True)


def test_data_center_picks_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_ITERABLE_EU",
        json.dumps({"conn_type": "iterable", "password": KEY, "extra": {"data_center": "EU"}}),
    )
    assert IterableHook("iterable_eu").get_conn().base_url == "https://api.eu.iterable.com"


def test_test_button_and_a_refused_key(stand: IterableSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message = IterableHook().test_connection()
    assert ok and "GET /api/lists answered" in message
    monkeypatch.setenv("AIRFLOW_CONN_ITERABLE_DEFAULT", json.dumps(stand.connection("stale-key-42")))
    ok, message = IterableHook().test_connection()
    assert not ok and "401" in message and "stale-key-42" not in message


def test_subscribers_iterable_does_not_take_are_named_by_identifier(stand: IterableSandbox) -> None:
    hook = IterableHook()
    list_id = hook.create_list("Partial")
    answer = hook.subscribe(list_id, [{"email": "a@example.com"}, {"email": "nope"}, {"userId": "u9"}])
    assert (answer["successCount"], answer["failCount"]) == (1, 2)
    assert failed_identifiers(answer) == {
        "email:nope": "Iterable did not take the subscriber: invalidEmails",
        "userId:u9": "Iterable did not take the subscriber: invalidUserIds",
    }
    gone = hook.unsubscribe(list_id, [{"email": "a@example.com"}, {"email": "x@example.com"}])
    assert gone["notFoundEmails"] == ["x@example.com"] and stand.held(list_id) == set()


def test_429_waits_out_retry_after(stand: IterableSandbox) -> None:
    slept: list[float] = []
    stand.faults.add("429", path_regex="/api/lists", retry_after=2, times=1)
    hook = IterableHook(retry_policy=http.RetryPolicy(sleep=slept.append))
    assert hook.lists() == [] and slept == [2.0]


def test_first_run_creates_the_list_then_churn_subscribes_and_unsubscribes(
    stand: IterableSandbox, lytics: Any
) -> None:
    first = JobRun(config(fields=["first_name"]), job_id="it_churn").run()
    list_id = stand.list_by_name(LIST)
    members = valid(lytics)
    assert stand.held(list_id) == members
    delivery = first["report"]["delivery"]
    assert delivery["outcomes"] == {"add:Subscribed": len(members), "add:Invalid": 40 - len(members)}
    assert delivery["iterable_requests"] == math.ceil(40 / 7)
    some = next(m for m in lytics.expected_members(AUDIENCE) if "@" in m["email"])
    assert stand.users[f"email:{some['email'].lower()}"]["first_name"] == some["first_name"]
    lytics.account.set_churn(AUDIENCE, exits=3, enters=3, changes=0)
    lytics.set_version(AUDIENCE, 1)
    before = stand.requests_accepted
    JobRun(config(fields=["first_name"]), job_id="it_churn", day=24).run()
    assert stand.held(list_id) == valid(lytics)
    assert stand.requests_accepted - before == 2
    assert len(stand.lists) == 1


def test_members_without_email_go_by_user_id_with_prefer_user_id(stand: IterableSandbox, lytics: Any) -> None:
    JobRun(config(email_field=None, user_id_field="user_id", prefer_user_id=True), job_id="it_uid").run()
    ids = {f"userId:{m['user_id']}" for m in lytics.expected_members(AUDIENCE)}
    assert stand.held(stand.list_by_name(LIST)) == ids


def test_refused_subscribers_land_in_rejects(stand: IterableSandbox, lytics: Any) -> None:
    xcoms = JobRun(config(), job_id="it_rejects").run()
    rows = [json.loads(line) for line in Path(xcoms["deliver"]["rejects_file"]).read_text().splitlines()]
    bad = {m["_uid"] for m in lytics.expected_members(AUDIENCE) if "@" not in m["email"]}
    assert {r["uid"] for r in rows} == bad and all("email" in r["reason"] for r in rows)


def test_an_existing_list_id_is_used_and_a_missing_one_fails_fast(
    stand: IterableSandbox, lytics: Any
) -> None:
    list_id = IterableHook().create_list("Existing")
    JobRun(config(list_id=list_id, list_name=None), job_id="it_existing").run()
    assert stand.held(list_id) == valid(lytics)
    run = JobRun(config(list_id=99999, list_name=None), job_id="it_missing")
    run.run(until="scan")
    with pytest.raises(ValueError, match="list 99999 does not exist"):
        run.run()


def test_an_interrupted_run_resumes_and_subscribes_each_member_once(
    stand: IterableSandbox, lytics: Any
) -> None:
    run = JobRun(config(), job_id="it_retry")
    run.run(until="scan")
    stand.faults.add("5xx", status=503, path_regex="/api/lists/subscribe", after=2, times=None)
    with pytest.raises(http.ServiceError):
        run.run()
    assert stand.requests_accepted == 2
    stand.faults.clear()
    run.run()
    assert stand.subscribers_taken == len(valid(lytics))


def test_a_refused_key_fails_fast(stand: IterableSandbox, lytics: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ITERABLE_DEFAULT", json.dumps(stand.connection("rotated")))
    run = JobRun(config(), job_id="it_auth")
    run.run(until="scan")
    with pytest.raises(AirflowFailException, match="InvalidApiKey"):
        run.run()
    assert stand.subscribers_taken == 0
