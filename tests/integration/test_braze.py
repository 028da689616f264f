"""Braze: the User Track hook and stand-in, export runs, partial success, 429, the config.

The stand-in follows https://www.braze.com/docs/api/endpoints/user_data/post_user_track/ and
https://www.braze.com/docs/api/api_limits/ (see ``lytics_sandbox.braze``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.braze import BrazeHook, instance_url
from lytics_provider.integrations.catalog import read_integration, todo_entries
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.jobs.types.braze import BrazeExportJob
from lytics_provider.pipeline import http
from lytics_sandbox.braze import BrazeSandbox
from lytics_sandbox.synth import SyntheticAccount
from tests.conformance.runner import JobRun
from tests.helpers import serve_connection

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "include" / "jobs" / "braze_export.yaml"
DECLARATION = REPO / "lytics_provider" / "integrations" / "braze.yaml"
KEY = "braze-rest-key-0123456789abcdef"
AUDIENCE = "vip_buyers"
ATTRIBUTE = f"lytics_{AUDIENCE}"


@pytest.fixture(scope="module")
def braze_stand() -> Iterator[BrazeSandbox]:
    with BrazeSandbox(api_keys=(KEY,)) as sandbox:
        yield sandbox


@pytest.fixture
def lytics_account() -> SyntheticAccount:
    return SyntheticAccount(seed=5, audiences={"all": 200, AUDIENCE: 40}, invalid_email_rate=0.1)


@pytest.fixture
def stand(
    braze_stand: BrazeSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[BrazeSandbox]:
    braze_stand.reset()
    serve_connection(monkeypatch, tmp_path, "braze_default", braze_stand.connection(KEY))
    yield braze_stand
    braze_stand.faults.clear()
    braze_stand.rate_limit = None


def config(**extra: Any) -> dict[str, Any]:
    return {"type": "braze_export", "audience": AUDIENCE, "email": "email", "batch_size": 7, **extra}


def valid_emails(lytics: Any) -> set[str]:
    return {f"email:{m['email'].lower()}" for m in lytics.expected_members(AUDIENCE) if "@" in m["email"]}


# -- the declaration, the example, the config -----------------------------------------------------
def test_registration_is_complete() -> None:
    assert todo_entries(read_integration(DECLARATION)) == []


def test_example_config_loads_and_builds_scan_deliver_report() -> None:
    jobs, errors = load_job_files([EXAMPLE])
    assert errors == []
    assert [job.config.type for job in jobs] == ["braze_export"]
    run = JobRun(jobs[0].config.model_dump(exclude_defaults=False), job_id="braze_example")
    assert sorted(run.dag.task_ids) == ["deliver", "report", "scan"]
    scan_fields = run.dag.get_task("scan").fields
    assert {"user_id", "email", "first_name"} <= set(scan_fields)


def test_a_config_without_identifier_names_the_options() -> None:
    with pytest.raises(ValueError, match="external_user_id, braze_id, email, phone"):
        BrazeExportJob(type="braze_export", audience=AUDIENCE)
    with pytest.raises(ValueError, match="user_alias_label and user_alias_field go together"):
        BrazeExportJob(type="braze_export", audience=AUDIENCE, user_alias_field="user_id")


def test_braze_instance_picks_the_rest_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    assert instance_url("US-03") == "https://rest.iad-03.braze.com"
    assert instance_url("eu-01") == "https://rest.fra-01.braze.eu"
    with pytest.raises(ValueError, match="unknown Braze Instance 'XX-9'"):
        instance_url("XX-9")
    monkeypatch.setenv(
        "AIRFLOW_CONN_BRAZE_EU",
        json.dumps({"conn_type": "braze", "password": KEY, "extra": {"braze_instance": "EU-02"}}),
    )
    hook = BrazeHook("braze_eu")
    assert hook.get_conn().base_url == "https://rest.fra-02.braze.eu"
    assert (hook.ledger.limit, hook.ledger.window) == (3000, 3.1)  # 3,000 per three seconds, 0.1 s margin


# -- the hook against the stand-in ----------------------------------------------------------------
def test_test_button_accepts_the_key_and_names_a_refused_one(
    stand: BrazeSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok, message = BrazeHook().test_connection()
    assert ok and "accepted the key" in message
    monkeypatch.setenv("AIRFLOW_CONN_BRAZE_DEFAULT", json.dumps(stand.connection("wrong-key-987")))
    ok, message = BrazeHook().test_connection()
    assert not ok and "refused the credentials" in message and "401" in message
    assert "wrong-key-987" not in message


def test_partial_success_names_each_refused_object(stand: BrazeSandbox) -> None:
    answer = BrazeHook().track_attributes(
        [{"email": "a@example.com", "x": 1}, {"email": "not-an-email"}, {"phone": "+15043277269", "x": 2}]
    )
    assert answer["attributes_processed"] == 2
    assert answer["errors"] == [
        {"type": "Invalid email address: 'not-an-email'", "input_array": "attributes", "index": 1}
    ]


def test_more_than_75_objects_is_refused_before_sending(stand: BrazeSandbox) -> None:
    with pytest.raises(ValueError, match="Braze takes 75"):
        BrazeHook().track_attributes([{"external_id": str(i)} for i in range(76)])
    assert stand.requests_accepted == 0


def test_429_pauses_the_connection_until_x_ratelimit_reset(stand: BrazeSandbox) -> None:
    start = time.time()
    now = [start]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    stand.faults.add("429", path_regex="/users/track", retry_after=5, times=1)
    hook = BrazeHook(sleep=sleep, clock=lambda: now[0])
    answer = hook.track_attributes([{"external_id": "u1", ATTRIBUTE: True}])
    assert answer["attributes_processed"] == 1
    assert hook.calls == 2
    assert hook.ledger.usage().paused_until >= start + 4
    assert sum(slept) >= 4  # waited until X-RateLimit-Reset, not a blind retry


# -- runs -----------------------------------------------------------------------------------------
def test_first_run_sets_the_attribute_and_churn_sets_it_false(stand: BrazeSandbox, lytics: Any) -> None:
    first = JobRun(config(), job_id="braze_churn").run()
    members = valid_emails(lytics)
    assert stand.members(ATTRIBUTE) == members
    assert first["report"]["delivery"]["outcomes"] == {
        "add:Set": len(members),
        "add:Rejected": 40 - len(members),
    }
    assert first["report"]["delivery"]["braze_requests"] == math.ceil(40 / 7)
    lytics.account.set_churn(AUDIENCE, exits=3, enters=3, changes=0)
    lytics.set_version(AUDIENCE, 1)
    requests_before = stand.requests_accepted
    JobRun(config(), job_id="braze_churn", day=24).run()
    now = valid_emails(lytics)
    assert stand.members(ATTRIBUTE) == now
    left = members - now
    assert left and all(stand.users[key][ATTRIBUTE] is False for key in left)
    assert stand.requests_accepted - requests_before == 2  # one request of enters, one of exits


def test_bad_emails_land_in_rejects_with_brazes_reason(stand: BrazeSandbox, lytics: Any) -> None:
    xcoms = JobRun(config(), job_id="braze_rejects").run()
    path = Path(xcoms["deliver"]["rejects_file"])
    rejects = [json.loads(line) for line in path.read_text().splitlines()]
    bad = {m["_uid"] for m in lytics.expected_members(AUDIENCE) if "@" not in m["email"]}
    assert {r["uid"] for r in rejects} == bad
    assert all("Invalid email address" in r["reason"] for r in rejects)


def test_external_id_and_fields_are_sent_and_exits_can_remove_the_attribute(
    stand: BrazeSandbox, lytics: Any
) -> None:
    cfg = config(external_user_id="user_id", fields=["first_name"], on_exit="remove_attribute")
    JobRun(cfg, job_id="braze_ext").run()
    some = next(iter(lytics.expected_members(AUDIENCE)))
    profile = stand.users[f"external_id:{some['user_id']}"]
    assert profile[ATTRIBUTE] is True and profile["first_name"] == some["first_name"]
    assert profile["email"] == some["email"]
    lytics.account.set_churn(AUDIENCE, exits=2, enters=0, changes=0)
    lytics.set_version(AUDIENCE, 1)
    JobRun(cfg, job_id="braze_ext", day=24).run()
    gone = [p for p in stand.users.values() if ATTRIBUTE not in p]
    assert len(gone) == 2


def test_user_alias_creates_alias_only_users(stand: BrazeSandbox, lytics: Any) -> None:
    cfg = {
        "type": "braze_export",
        "audience": AUDIENCE,
        "user_alias_label": "lytics_uid",
        "user_alias_field": "_uid",
    }
    JobRun(cfg, job_id="braze_alias").run()
    uids = {m["_uid"] for m in lytics.expected_members(AUDIENCE)}
    assert stand.members(ATTRIBUTE) == {f"user_alias:lytics_uid:{u}" for u in uids}


def test_an_interrupted_run_resumes_and_sends_each_member_once(stand: BrazeSandbox, lytics: Any) -> None:
    run = JobRun(config(), job_id="braze_retry")
    run.run(until="scan")
    stand.faults.add("5xx", status=503, path_regex="/users/track", after=2, times=None)
    with pytest.raises(http.ServiceError):
        run.run()
    assert stand.requests_accepted == 2  # two acknowledged batches of 7
    stand.faults.clear()
    run.run()
    assert stand.objects_processed == len(valid_emails(lytics))
    assert stand.members(ATTRIBUTE) == valid_emails(lytics)


def test_a_refused_key_fails_fast_without_sending(stand: BrazeSandbox, lytics: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BRAZE_DEFAULT", json.dumps(stand.connection("rotated-key")))
    run = JobRun(config(), job_id="braze_auth")
    run.run(until="scan")
    with pytest.raises(AirflowFailException, match=r"users\.track permission"):
        run.run()
    assert stand.objects_processed == 0
