"""Marketo: the hook's token, error envelope and call budget, and Export Audiences, against the
stand-in (``lytics_sandbox.marketo``), which follows Adobe's published Marketo REST API
documentation (https://experienceleague.adobe.com/en/docs/marketo-developer/marketo/rest/rest-api).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.marketo import MarketoHook
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.pipeline import http
from lytics_sandbox.marketo import MarketoSandbox
from lytics_sandbox.synth import SyntheticAccount
from tests.conformance.runner import JobRun

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def marketo_server() -> Iterator[MarketoSandbox]:
    with MarketoSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def lytics_account() -> SyntheticAccount:
    return SyntheticAccount(seed=9, audiences={"all": 300, "vip": 120}, invalid_email_rate=0.05)


@pytest.fixture
def mkto(marketo_server: MarketoSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MarketoSandbox:
    marketo_server.reset()
    connection = {**marketo_server.connection(), "extra": {"window_seconds": 1, "calls_per_window": 10}}
    marketo_server.window, marketo_server.calls_per_window = 1.0, 10
    monkeypatch.setenv("AIRFLOW_CONN_MARKETO_DEFAULT", json.dumps(connection))
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(http.RetryPolicy, "backoff", lambda self, attempt: 0.0)
    return marketo_server


def vip_emails(lytics: Any) -> tuple[set[str], set[str]]:
    valid, invalid = set(), set()
    for member in lytics.expected_members("vip"):
        email = str(member.get("email") or "").lower()
        (valid if "@" in email and "." in email.split("@")[-1] else invalid).add(email)
    return valid, invalid


def test_test_button_and_refused_credentials(mkto: MarketoSandbox) -> None:
    ok, message = MarketoHook().test_connection()
    assert ok, message
    secret = mkto.client_secret
    mkto.client_secret = "rotated"
    ok, message = MarketoHook().test_connection()
    assert not ok and "refused the credentials" in message and secret not in message


def test_an_expired_token_602_is_renewed_and_the_call_sent_again(mkto: MarketoSandbox) -> None:
    hook = MarketoHook()
    hook.sync_leads([{"email": "a@example.com"}])
    mkto.expire_tokens()
    result = hook.sync_leads([{"email": "b@example.com", "firstName": "B"}])
    assert result[0]["status"] == "created"
    assert mkto.calls_to("token") == 2


def test_a_606_pauses_for_the_window_and_sends_again(mkto: MarketoSandbox) -> None:
    mkto.calls_per_window = 3  # the server's limit is lower than the connection's budget
    hook = MarketoHook()
    for n in range(6):
        hook.sync_leads([{"email": f"lead{n}@example.com"}])
    assert mkto.rate_limited >= 1 and hook.rate_limited == mkto.rate_limited
    assert len(mkto.data.leads) == 6


def test_the_daily_quota_607_fails_fast_naming_the_reset(mkto: MarketoSandbox) -> None:
    mkto.daily_quota = 0
    with pytest.raises(AirflowFailException, match="daily API quota"):
        MarketoHook().sync_leads([{"email": "a@example.com"}])


def test_export_leads_list_rejects_and_exits_without_lookups(mkto: MarketoSandbox, lytics: Any) -> None:
    list_id = mkto.data.add_list("VIP")
    config = {"type": "marketo_export", "audience": "vip", "static_list": "VIP", "batch_size": 50}
    report = JobRun(config, "mkto_vip").run()["report"]
    valid, invalid = vip_emails(lytics)
    assert invalid and mkto.data.list_emails(list_id) == valid
    assert report["delivery"]["rejected"] == len(invalid)
    assert mkto.rate_limited == 0  # 10 calls a second: the budget kept every call within it
    # a lead Marketo skips (an unknown lead field) is a reject with Marketo's reason
    mkto.data.fields.discard("lastName")
    lytics.account.set_churn("vip", exits=5, enters=5, changes=0)
    lytics.set_version("vip", 1)
    mkto.reset_counters()
    report = JobRun(config, "mkto_vip", day=24).run()["report"]
    assert mkto.calls_to("get_leads") == 0  # exits use the lead ids saved when the job added them
    assert report["exits"] == 5
    rejects = [json.loads(line) for line in Path(report["delivery"]["rejects_file"]).read_text().splitlines()]
    assert any("Field 'lastName' not found" in r["reason"] for r in rejects)


def test_an_unknown_static_list_names_the_lists(mkto: MarketoSandbox, lytics: Any) -> None:
    mkto.data.add_list("VIP")
    config = {"type": "marketo_export", "audience": "vip", "static_list": "Nope"}
    with pytest.raises(ValueError, match=r"'Nope' not found; lists: \d+ \(VIP\)"):
        JobRun(config, "mkto_nope").run()


def test_example_config_loads() -> None:
    loaded, errors = load_job_files([ROOT / "include" / "jobs" / "marketo_export.yaml"])
    assert errors == [] and loaded[0].config.type == "marketo_export"
