"""Members without ``_uid`` and the exit guard, end to end against the Lytics and Dotdigital sandboxes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from lytics_provider.operators.dotdigital import (
    DotdigitalExportContactsOperator,
    DotdigitalRemoveContactsOperator,
)
from lytics_provider.operators.lytics import LyticsAudienceScanOperator, LyticsCommitRunOperator
from lytics_provider.pipeline.exit_guard import MassExitError
from lytics_provider.pipeline.workarea import JobState
from lytics_sandbox.dotdigital import DotdigitalSandbox
from lytics_sandbox.lytics import LyticsSandbox
from lytics_sandbox.synth import SyntheticAccount
from tests.helpers import make_context, run_task

AUDIENCE = "newsletter"
BOOK = "Lytics newsletter"
IMPORT_ROUTE = "POST /v2/address-books/{book}/contacts/import"
DELETE_ROUTE = "POST /v2/address-books/{book}/contacts/delete"
FIELDS = ["email", "first_name"]


@pytest.fixture
def lytics_account() -> SyntheticAccount:
    return SyntheticAccount(audiences={"all_users": 900, AUDIENCE: 400})


@pytest.fixture
def env(lytics: LyticsSandbox, dd: DotdigitalSandbox) -> tuple[LyticsSandbox, DotdigitalSandbox]:
    """Lytics stand-in (audience of 400) and Dotdigital stand-in, wired to the default connections."""
    return lytics, dd


def without_uid(profile: dict) -> dict:
    return {k: v for k, v in profile.items() if k != "_uid"}


def run_job(run_id: str, deliver, fields=FIELDS, **params) -> tuple[dict, dict]:
    """scan -> deliver -> report as the DAG runs them; returns (scan XCom, deliver XCom)."""
    context = make_context(run_id=run_id, params={"dry_run": False, "full_refresh": False, **params})
    scan = LyticsAudienceScanOperator(
        task_id="scan", audience=AUDIENCE, job_id=deliver.job_id, fields=fields, page_size=100
    )
    scanned = run_task(scan, context)
    result = run_task(deliver, context)
    run_task(LyticsCommitRunOperator(task_id="report", job_id=deliver.job_id), context)
    return scanned, result


def export(**kwargs) -> DotdigitalExportContactsOperator:
    return DotdigitalExportContactsOperator(
        task_id="deliver", job_id="dd_identity", create_address_book=True, **kwargs
    )


def emails(lytics: LyticsSandbox) -> set[str]:
    return {r["email"] for r in lytics.expected_members(AUDIENCE)}


def snapshot_keys(path: str) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [row[0] for row in db.execute("SELECT uid FROM members")]
    finally:
        db.close()


def writes(dd: DotdigitalSandbox) -> dict[str, int]:
    """Calls that change Dotdigital (every route but GET)."""
    return {name: n for name, n in dd.calls.items() if not name.startswith("GET ")}


@pytest.mark.parametrize("fields", [FIELDS, None], ids=["fields", "all-fields"])
def test_profiles_without_uid_export_keyed_by_email_and_churn_sends_only_the_churn(env, fields) -> None:
    lytics, dd = env
    lytics.profile_edit = without_uid
    scanned, _ = run_job("r1", export(), fields=fields)
    assert scanned["members"] == 400 and scanned["rejected"] == 0
    assert all(key.startswith("email:") for key in snapshot_keys(scanned["snapshot"]))
    book = dd.book_by_name(BOOK)
    before = emails(lytics)
    assert set(dd.members(book.id)) == before
    lytics.set_version(AUDIENCE, 1)
    after = emails(lytics)
    dd.reset_counters()
    _, second = run_job("r2", export(), fields=fields)
    assert set(dd.members(book.id)) == after
    planned = second["planned"]
    assert (planned["enters"], planned["exits"]) == (len(after - before), len(before - after))
    assert planned["adds"] == len(after - before) + planned["changes"]
    assert second["outcomes"]["remove:Removed"] == len(before - after)
    assert dd.calls_to(IMPORT_ROUTE) == 1 and dd.calls_to(DELETE_ROUTE) == 1


def test_member_without_identity_is_rejected_with_the_reason_and_the_rest_delivered(env) -> None:
    lytics, dd = env
    rows = list(lytics.expected_members(AUDIENCE))
    lost = rows[150]["email"]

    def crm_import(profile: dict) -> dict:
        profile = without_uid(profile)
        if profile["email"] == lost:
            profile.pop("email")
        return profile

    lytics.profile_edit = crm_import
    scanned, result = run_job("r1", export())
    assert scanned["members"] == 399 and scanned["rejected"] == 1
    lines = [json.loads(line) for line in Path(scanned["rejects_file"]).read_text().splitlines()]
    assert [(line["reason"], line["row_number"]) for line in lines] == [
        ("no identity: none of _uid, email present", 151)
    ]
    assert "email" not in lines[0]["record"] and lines[0]["record"]["first_name"] == rows[150]["first_name"]
    report = JobState("dd_identity").get("last_report")
    assert (report["scan_rejected"], report["scan_rejects_file"]) == (1, scanned["rejects_file"])
    book = dd.book_by_name(BOOK)
    assert set(dd.members(book.id)) == {r["email"] for r in rows} - {lost}
    assert result["planned"]["adds"] == 399


def test_member_whose_key_field_changes_is_not_removed(env) -> None:
    """Run 1 keys everyone by email (no _uid); run 2 by _uid: 400 exits + 400 enters in the diff,
    the same emails, so nothing is removed and the exit guard has nothing to stop."""
    lytics, dd = env
    lytics.profile_edit = without_uid
    run_job("r1", export())
    book = dd.book_by_name(BOOK)
    lytics.profile_edit = None
    dd.reset_counters()
    _, second = run_job("r2", export())
    planned = second["planned"]
    assert (planned["enters"], planned["exits"], planned["reentries"], planned["removes"]) == (
        400,
        400,
        400,
        0,
    )
    assert second["exit_guard"]["status"] == "ok" and second["exit_guard"]["exits"] == 0
    assert dd.calls_to(DELETE_ROUTE) == 0
    assert set(dd.members(book.id)) == emails(lytics)


def mass_exit(lytics: LyticsSandbox, exits: int) -> None:
    lytics.set_churn(AUDIENCE, exits=exits, enters=0, changes=0)
    lytics.set_version(AUDIENCE, 1)


def test_exit_guard_stops_the_run_before_any_write(env) -> None:
    lytics, dd = env
    run_job("r1", export())
    book = dd.book_by_name(BOOK)
    mass_exit(lytics, 150)
    dd.reset_counters()
    with pytest.raises(MassExitError) as info:
        run_job("r2", export())
    message = str(info.value)
    assert "150 of 400 members" in message
    assert "allow_mass_exit: true" in message and "max_exit_fraction" in message
    assert writes(dd) == {}
    assert len(dd.members(book.id)) == 400


def test_allow_mass_exit_lets_one_run_through(env) -> None:
    lytics, dd = env
    run_job("r1", export())
    book = dd.book_by_name(BOOK)
    mass_exit(lytics, 150)
    _, result = run_job("r2", export(), allow_mass_exit=True)
    assert result["exit_guard"]["status"] == "allowed"
    assert result["outcomes"]["remove:Removed"] == 150
    assert set(dd.members(book.id)) == emails(lytics)


def test_higher_max_exit_fraction_lets_the_run_through(env) -> None:
    lytics, _dd = env
    run_job("r1", export())
    mass_exit(lytics, 150)
    _, result = run_job("r2", export(max_exit_fraction=0.5))
    assert result["exit_guard"]["status"] == "ok"
    assert result["outcomes"]["remove:Removed"] == 150


def test_dry_run_reports_the_guard_verdict_instead_of_failing(env) -> None:
    lytics, dd = env
    run_job("r1", export())
    mass_exit(lytics, 150)
    dd.reset_counters()
    _, result = run_job("r2", export(), dry_run=True)
    guard = result["exit_guard"]
    assert (guard["status"], guard["exits"], guard["previous"]) == ("blocked", 150, 400)
    assert result["planned"]["removes"] == 150
    assert writes(dd) == {}


def test_the_floor_lets_a_small_audience_through(env) -> None:
    """60 of 400 is 15%; with the fraction at 0.1 the guard would stop it, but 60 < the floor of 100."""
    lytics, _dd = env
    run_job("r1", export(max_exit_fraction=0.1))
    mass_exit(lytics, 60)
    _, result = run_job("r2", export(max_exit_fraction=0.1))
    assert result["exit_guard"]["status"] == "ok" and result["exit_guard"]["exits"] == 60
    assert result["outcomes"]["remove:Removed"] == 60
    mass_exit(lytics, 60)
    lytics.set_version(AUDIENCE, 2)
    with pytest.raises(MassExitError, match="60 of 340 members"):
        run_job("r3", export(max_exit_fraction=0.1, exit_guard_min_exits=50))


def test_unsubscribe_on_exit_is_guarded_too(env) -> None:
    lytics, dd = env
    run_job("r1", export(on_exit="unsubscribe"))
    mass_exit(lytics, 150)
    dd.reset_counters()
    with pytest.raises(MassExitError, match="150 of 400"):
        run_job("r2", export(on_exit="unsubscribe"))
    assert writes(dd) == {}


def test_remove_contacts_guards_its_resubscribes_on_exit(env) -> None:
    lytics, dd = env
    for row in lytics.expected_members(AUDIENCE):
        dd.add_contact(row["email"])
    op = DotdigitalRemoveContactsOperator(task_id="deliver", job_id="dd_remove", resubscribe_on_exit=True)
    run_job("r1", op)
    mass_exit(lytics, 150)
    dd.reset_counters()
    with pytest.raises(MassExitError, match="150 of 400"):
        run_job(
            "r2",
            DotdigitalRemoveContactsOperator(task_id="deliver", job_id="dd_remove", resubscribe_on_exit=True),
        )
    assert writes(dd) == {}
