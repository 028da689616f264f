"""Brevo: the hook (api-key, 429 with x-sib-ratelimit-reset, Test button) and Export Users against
the stand-in (``lytics_sandbox.brevo``), which follows Brevo's published API reference
(https://developers.brevo.com/reference).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.brevo import BrevoHook
from lytics_provider.jobs.loader import load_job_files
from lytics_provider.pipeline import http
from lytics_sandbox.brevo import BrevoSandbox
from lytics_sandbox.synth import SyntheticAccount
from tests.conformance.runner import JobRun

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def brevo_server() -> Iterator[BrevoSandbox]:
    with BrevoSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def lytics_account() -> SyntheticAccount:
    return SyntheticAccount(seed=13, audiences={"all": 300, "vip": 120}, invalid_email_rate=0.05)


@pytest.fixture
def brevo(brevo_server: BrevoSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> BrevoSandbox:
    brevo_server.reset()
    monkeypatch.setenv("AIRFLOW_CONN_BREVO_DEFAULT", json.dumps(brevo_server.connection()))
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(http.RetryPolicy, "backoff", lambda self, attempt: 0.0)
    return brevo_server


def vip_emails(lytics: Any) -> tuple[set[str], set[str]]:
    valid, invalid = set(), set()
    for member in lytics.expected_members("vip"):
        email = str(member.get("email") or "").lower()
        (valid if "@" in email and "." in email.split("@")[-1] else invalid).add(email)
    return valid, invalid


def test_test_button_and_a_wrong_key(brevo: BrevoSandbox) -> None:
    ok, message = BrevoHook().test_connection()
    assert ok, message
    key = brevo.api_key
    brevo.api_key = "revoked"
    ok, message = BrevoHook().test_connection()
    assert not ok and "refused the credentials" in message and key not in message


def test_a_429_pauses_the_connection_until_the_reset_and_sends_again(brevo: BrevoSandbox) -> None:
    list_id = brevo.data.add_list("L")
    brevo.calls_per_window = 2  # the server allows fewer calls than the connection's budget
    hook = BrevoHook()
    for n in range(5):
        hook.import_contacts(list_id, [{"email": f"c{n}@example.com", "attributes": {}}])
    assert brevo.rate_limited >= 1 and hook.rate_limited == brevo.rate_limited
    assert brevo.data.members(list_id) == {f"c{n}@example.com" for n in range(5)}


def test_export_imports_members_with_attributes_and_removes_exits(brevo: BrevoSandbox, lytics: Any) -> None:
    list_id = brevo.data.add_list("VIP")
    config = {"type": "brevo_export", "audience": "vip", "list": "VIP", "batch_size": 40}
    report = JobRun(config, "brevo_vip").run()["report"]
    valid, invalid = vip_emails(lytics)
    assert invalid and brevo.data.members(list_id) == valid
    assert report["delivery"]["rejected"] == len(invalid)
    assert brevo.rate_limited == 0
    assert any(c["attributes"].get("FIRSTNAME") for c in brevo.data.contacts.values())
    assert brevo.calls_to("import") == -(-len(valid) // 40)
    lytics.account.set_churn("vip", exits=4, enters=4, changes=0)
    lytics.set_version("vip", 1)
    report = JobRun(config, "brevo_vip", day=24).run()["report"]
    assert report["exits"] == 4 and brevo.calls_to("remove") == 1
    assert len(brevo.data.contacts) >= len(valid)  # exits leave the list, the contacts stay


def test_an_unknown_list_names_the_lists(brevo: BrevoSandbox, lytics: Any) -> None:
    brevo.data.add_list("VIP")
    with pytest.raises(ValueError, match=r"Brevo list 'Nope' not found; lists: \d+ \(VIP\)"):
        JobRun({"type": "brevo_export", "audience": "vip", "list": "Nope"}, "brevo_nope").run()


def test_a_revoked_key_fails_fast(brevo: BrevoSandbox, lytics: Any) -> None:
    brevo.data.add_list("VIP")
    run = JobRun({"type": "brevo_export", "audience": "vip", "list": "VIP"}, "brevo_revoked")
    run.run(until="scan")
    brevo.api_key = "revoked"
    with pytest.raises(AirflowFailException):
        run.run()


def test_example_config_loads() -> None:
    loaded, errors = load_job_files([ROOT / "include" / "jobs" / "brevo_export.yaml"])
    assert errors == [] and loaded[0].config.type == "brevo_export" and loaded[0].config.keep_updated
