"""Export Modified Contacts and Remove Contacts against the sandboxes."""

from __future__ import annotations

import pytest

from lytics_provider.operators.dotdigital import (
    DotdigitalExportModifiedContactsOperator,
    DotdigitalRemoveContactsOperator,
)
from lytics_provider.operators.lytics import LyticsAudienceScanOperator, LyticsCommitRunOperator
from lytics_sandbox.dotdigital import DotdigitalSandbox
from lytics_sandbox.lytics import LyticsSandbox
from lytics_sandbox.synth import SyntheticAccount
from tests.helpers import make_context, run_task

AUDIENCE = "opted_out"


@pytest.fixture
def lytics_account() -> SyntheticAccount:
    return SyntheticAccount(audiences={"all_users": 200, AUDIENCE: 40})


@pytest.fixture
def env(lytics: LyticsSandbox, dd: DotdigitalSandbox) -> tuple[LyticsSandbox, DotdigitalSandbox]:
    return lytics, dd


def run_job(run_id: str, deliver, fields) -> dict:
    context = make_context(run_id=run_id)
    scan = LyticsAudienceScanOperator(
        task_id="scan", audience=AUDIENCE, job_id=deliver.job_id, fields=fields, digest_fields=fields
    )
    run_task(scan, context)
    result = run_task(deliver, context)
    run_task(LyticsCommitRunOperator(task_id="report", job_id=deliver.job_id), context)
    return result


def test_modified_contacts_updates_data_fields_account_wide(env) -> None:
    lytics, dd = env
    dd.add_data_field("SCORE", "Numeric")
    op = DotdigitalExportModifiedContactsOperator(
        task_id="deliver", job_id="dd_mod", map_fields={"score_engagement": "SCORE"}, sync_status=True
    )
    fields = ["email", "score_engagement"]
    run_job("m1", op, fields)
    rows = list(lytics.expected_members(AUDIENCE))
    assert dd.calls_to("POST /v2/contacts/import") == 1
    assert all(dd.contact(r["email"]).data_fields["SCORE"] == str(r["score_engagement"]) for r in rows)
    assert dd.books == {}
    lytics.set_churn(AUDIENCE, exits=0, enters=0, changes=5)
    lytics.set_version(AUDIENCE, 1)
    lytics.clear_collected()
    second = run_job("m2", op, fields)
    assert second["planned"]["changes"] > 0 and second["planned"]["adds"] == second["planned"]["changes"]
    changed = list(lytics.expected_members(AUDIENCE))
    assert all(dd.contact(r["email"]).data_fields["SCORE"] == str(r["score_engagement"]) for r in changed)
    status = lytics.collected("dotmailer_export_status")
    assert len(status) == second["planned"]["changes"]
    assert all(set(r["dm_account_status"].values()) == {"subscribed"} for r in status)


def test_remove_contacts_unsubscribes_on_enter_and_resubscribes_on_exit(env) -> None:
    lytics, dd = env
    rows = list(lytics.expected_members(AUDIENCE))
    for row in rows:
        dd.add_contact(row["email"])
    op = DotdigitalRemoveContactsOperator(
        task_id="deliver", job_id="dd_rm", on_enter="unsubscribe", resubscribe_on_exit=True,
        resubscribe_with_no_challenge=True,
    )  # fmt: skip
    first = run_job("x1", op, ["email"])
    assert all(dd.contact(r["email"]).status == "Unsubscribed" for r in rows)
    assert first["outcomes"]["unsubscribe:Unsubscribed"] == len(rows)
    assert dd.calls_to("POST /v2/contacts/unsubscribe") == len(rows)
    lytics.set_version(AUDIENCE, 1)
    second = run_job("x2", op, ["email"])
    left = {r["email"] for r in rows} - {r["email"] for r in lytics.expected_members(AUDIENCE)}
    assert left and all(dd.contact(e).status == "Subscribed" for e in left)
    assert second["outcomes"]["resubscribe:Subscribed"] == len(left)
    assert dd.calls_to("POST /v2/contacts/resubscribe-with-no-challenge") == len(left)


def test_remove_contacts_removes_from_a_book_in_bulk(env) -> None:
    lytics, dd = env
    book = dd.add_address_book("Marketing")
    rows = list(lytics.expected_members(AUDIENCE))
    keep = dd.add_contact("keep@example.com", books=[book])
    for row in rows:
        dd.add_contact(row["email"], books=[book])
    op = DotdigitalRemoveContactsOperator(
        task_id="deliver", job_id="dd_rm_book", address_book_name="Marketing", on_enter="remove"
    )
    result = run_job("x1", op, ["email"])
    assert set(dd.members(book)) == {"keep@example.com"}
    assert keep in dd.contacts
    assert dd.calls_to("POST /v2/address-books/{book}/contacts/delete") == 1
    assert result["outcomes"]["remove:Removed"] == len(rows)
