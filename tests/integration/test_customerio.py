"""Customer.io: the Track API hook and stand-in, Export Users runs, refused rows, the config.

The stand-in follows https://docs.customer.io/api/track/ (see ``lytics_sandbox.customerio``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.customerio import (
    MAX_REQUEST_BYTES,
    CustomerIOHook,
    CustomerIOPeopleDestination,
    entry_problem,
    pack,
)
from lytics_provider.integrations.catalog import read_integration, todo_entries
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.jobs.types.customerio import CustomerIOExportJob
from lytics_provider.pipeline import http
from lytics_provider.sync.act import act_in_batches
from lytics_provider.sync.plan import SyncPlan
from lytics_sandbox.customerio import CustomerIOSandbox
from lytics_sandbox.synth import SyntheticAccount
from tests.conformance.runner import JobRun
from tests.helpers import serve_connection

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "include" / "jobs" / "customerio_export.yaml"
DECLARATION = REPO / "lytics_provider" / "integrations" / "customerio.yaml"
AUDIENCE = "vip_buyers"


@pytest.fixture(scope="module")
def cio_stand() -> Iterator[CustomerIOSandbox]:
    with CustomerIOSandbox(site_id="site-77", api_key="track-key-0123456789") as sandbox:
        yield sandbox


@pytest.fixture
def lytics_account() -> SyntheticAccount:
    return SyntheticAccount(seed=5, audiences={"all": 200, AUDIENCE: 40}, invalid_email_rate=0.1)


@pytest.fixture
def stand(
    cio_stand: CustomerIOSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[CustomerIOSandbox]:
    cio_stand.reset()
    serve_connection(monkeypatch, tmp_path, "customerio_default", cio_stand.connection())
    yield cio_stand
    cio_stand.faults.clear()


def config(**extra: Any) -> dict[str, Any]:
    return {"type": "customerio_export", "audience": AUDIENCE, "batch_size": 7, **extra}


def valid(lytics: Any) -> set[str]:
    return {f"email:{m['email'].lower()}" for m in lytics.expected_members(AUDIENCE) if "@" in m["email"]}


def test_registration_is_complete() -> None:
    assert todo_entries(read_integration(DECLARATION)) == []


def test_example_config_loads_and_builds_scan_deliver_report() -> None:
    jobs, errors = load_job_files([EXAMPLE])
    assert errors == []
    run = JobRun(jobs[0].config.model_dump(exclude_defaults=False), job_id="cio_example")
    assert sorted(run.dag.task_ids) == ["deliver", "report", "scan"]
    assert {"user_id", "email", "first_name", "score"} <= set(run.dag.get_task("scan").fields)


def test_a_config_without_identifier_is_refused() -> None:
    with pytest.raises(ValueError, match="set id_field or email_field"):
        CustomerIOExportJob(type="customerio_export", audience=AUDIENCE, email_field=None)


def test_region_picks_the_track_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_CIO_EU",
        json.dumps({"conn_type": "customerio", "login": "s", "password": "k", "extra": {"region": "EU"}}),
    )
    hook = CustomerIOHook("cio_eu")
    assert hook.get_conn().base_url == "https://track-eu.customer.io"
    assert (hook.ledger.limit, hook.ledger.window) == (100, 1.05)  # 100 per second, 0.05 s margin


def test_test_button_and_a_refused_key(stand: CustomerIOSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message = CustomerIOHook().test_connection()
    assert ok and "/api/v1/accounts/region answered" in message
    monkeypatch.setenv("AIRFLOW_CONN_CUSTOMERIO_DEFAULT", json.dumps(stand.connection(api_key="old-key-5")))
    ok, message = CustomerIOHook().test_connection()
    assert not ok and "401" in message and "old-key-5" not in message


def test_requests_are_packed_within_500_kb() -> None:
    entries = [
        {"type": "person", "identifiers": {"id": str(i)}, "attributes": {"x": "y" * 20_000}}
        for i in range(60)
    ]
    chunks = list(pack(entries))
    assert sum(len(c) for c in chunks) == 60 and len(chunks) == 3
    assert all(len(json.dumps({"batch": c}, separators=(",", ":"))) <= MAX_REQUEST_BYTES for c in chunks)
    too_many = {"attributes": {str(i): i for i in range(301)}}
    assert "at most 300 in one identify" in str(entry_problem(too_many))


def test_a_row_customerio_refuses_is_isolated_and_the_rest_sent(
    stand: CustomerIOSandbox, tmp_path: Path
) -> None:
    plan = SyncPlan(tmp_path / "plan.db")
    rows = [("add", "default", f"u{i}", f"email:p{i}@example.com", None, "{}") for i in range(6)]
    rows[3] = ("add", "default", "u3", "email:not-an-email", None, "{}")
    plan.add_work(rows)
    dest = CustomerIOPeopleDestination(CustomerIOHook())
    act_in_batches(plan, "add", "default", 6, lambda batch: dest.add("default", batch))
    rejects = list(plan.iter_outcomes(rejected_only=True))
    assert [r[0] for r in rejects] == ["email:not-an-email"] and "not a valid email" in str(rejects[0][6])
    assert len(stand.people) == 5


def test_first_run_creates_people_and_churn_sends_only_enters(stand: CustomerIOSandbox, lytics: Any) -> None:
    cfg = config(fields=["first_name"], extra_attributes={"lytics_city": "city"})
    first = JobRun(cfg, job_id="cio_churn").run()
    assert set(stand.people) == valid(lytics)
    some = next(m for m in lytics.expected_members(AUDIENCE) if "@" in m["email"])
    person = stand.people[f"email:{some['email'].lower()}"]
    assert person == {"first_name": some["first_name"], "lytics_city": some["city"], "email": some["email"]}
    assert first["report"]["delivery"]["customerio_requests"] == 6
    first_uids = {m["_uid"] for m in lytics.expected_members(AUDIENCE)}
    lytics.account.set_churn(AUDIENCE, exits=3, enters=3, changes=0)
    lytics.set_version(AUDIENCE, 1)
    entered = [m for m in lytics.expected_members(AUDIENCE) if m["_uid"] not in first_uids]
    before, people_before = stand.identifies, len(stand.people)
    second = JobRun(cfg, job_id="cio_churn", day=24).run()
    sent = [m for m in entered if "@" in m["email"]]
    assert stand.identifies - before == len(sent)  # only the enters; exits send nothing
    assert len(stand.people) == people_before + len(sent)  # nobody is removed
    assert second["report"]["exits"] == 3


def test_people_are_identified_by_id_when_id_field_is_set(stand: CustomerIOSandbox, lytics: Any) -> None:
    JobRun(config(id_field="user_id"), job_id="cio_id").run()
    assert set(stand.people) == {f"id:{m['user_id']}" for m in lytics.expected_members(AUDIENCE)}


def test_an_interrupted_run_resumes_and_sends_each_member_once(stand: CustomerIOSandbox, lytics: Any) -> None:
    run = JobRun(config(), job_id="cio_retry")
    run.run(until="scan")
    stand.faults.add("5xx", status=503, path_regex="/api/v2/batch", after=2, times=None)
    with pytest.raises(http.ServiceError):
        run.run()
    assert stand.requests_accepted == 2
    stand.faults.clear()
    run.run()
    assert stand.identifies == len(valid(lytics))


def test_a_refused_key_fails_fast(stand: CustomerIOSandbox, lytics: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CUSTOMERIO_DEFAULT", json.dumps(stand.connection(api_key="rotated")))
    run = JobRun(config(), job_id="cio_auth")
    run.run(until="scan")
    with pytest.raises(AirflowFailException, match="Site ID"):
        run.run()
    assert stand.identifies == 0
