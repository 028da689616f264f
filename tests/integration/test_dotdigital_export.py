"""Export Contacts / Export Multiple Audiences against the Dotdigital and Lytics sandboxes."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from lytics_provider.hooks.dotdigital import ApiUsageExceededError, DotdigitalHook
from lytics_provider.operators.dotdigital import (
    DotdigitalConfigError,
    DotdigitalExportContactsOperator,
    _DotdigitalDeliveryOperator,
)
from lytics_provider.operators.lytics import LyticsAudienceScanOperator, LyticsCommitRunOperator
from lytics_provider.pipeline.http import AuthError
from lytics_sandbox.dotdigital import connection_json
from lytics_sandbox.lytics import LyticsSandbox
from lytics_sandbox.synth import SyntheticAccount
from tests.helpers import make_context, run_task

AUDIENCE = "newsletter"
ADD_ROUTE = "POST /v2/address-books/{book}/contacts"
IMPORT_ROUTE = "POST /v2/address-books/{book}/contacts/import"


@pytest.fixture
def lytics_account() -> SyntheticAccount:
    return SyntheticAccount(audiences={"all_users": 300, AUDIENCE: 120}, invalid_email_rate=0.05)


def run_job(run_id: str, deliver: DotdigitalExportContactsOperator, fields=None, **params) -> dict:
    """scan -> deliver -> report, as the DAG runs them, with a fake task context."""
    context = make_context(run_id=run_id, params={"dry_run": False, "full_refresh": False, **params})
    scan = LyticsAudienceScanOperator(
        task_id="scan", audience=AUDIENCE, job_id=deliver.job_id, fields=fields, page_size=100
    )
    run_task(scan, context)
    result = run_task(deliver, context)
    run_task(LyticsCommitRunOperator(task_id="report", job_id=deliver.job_id), context)
    return result


def export(**kwargs) -> DotdigitalExportContactsOperator:
    return DotdigitalExportContactsOperator(task_id="deliver", job_id="dd_export", **kwargs)


def members(lytics: LyticsSandbox) -> list[dict]:
    return list(lytics.expected_members(AUDIENCE))


def valid(rows: list[dict]) -> list[dict]:
    return [r for r in rows if "@" in r["email"]]


def read_rejects(path: str) -> list[dict]:
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_first_run_bulk_imports_audience_and_rejects_invalid_emails(lytics, dd) -> None:
    result = run_job("r1", export(create_address_book=True))
    book = dd.book_by_name("Lytics newsletter")
    assert book is not None
    expected = members(lytics)
    assert set(dd.members(book.id)) == {r["email"] for r in valid(expected)}
    assert dd.calls_to(IMPORT_ROUTE) == 1
    assert dd.calls_to(ADD_ROUTE) == 0
    assert dd.join_actions == []
    contact = dd.contact(valid(expected)[0]["email"])
    assert (contact.opt_in_type, contact.email_type) == ("Unknown", "Html")
    invalid = [r for r in expected if "@" not in r["email"]]
    assert invalid, "the synthetic audience should contain invalid emails"
    rejects = read_rejects(result["rejects_file"])
    assert {r["uid"] for r in rejects} == {r["_uid"] for r in invalid}
    assert all("not a valid email" in r["reason"] for r in rejects)
    assert result["rejected"] == len(invalid)


def test_keep_updated_run_sends_only_the_churn(lytics, dd) -> None:
    run_job("r1", export(create_address_book=True))
    book = dd.book_by_name("Lytics newsletter")
    before = {r["email"] for r in valid(members(lytics))}
    lytics.set_version(AUDIENCE, 1)
    after = {r["email"] for r in valid(members(lytics))}
    dd.reset_counters()
    result = run_job("r2", export(create_address_book=True))
    assert set(dd.members(book.id)) == after
    assert result["planned"]["enters"] > 0 and result["planned"]["exits"] > 0
    assert dd.calls_to("POST /v2/address-books") == 0
    assert dd.calls_to(IMPORT_ROUTE) == 1
    assert dd.calls_to("POST /v2/address-books/{book}/contacts/delete") == 1
    assert result["outcomes"]["remove:Removed"] == len(before - after)
    # a third run with no churn sends nothing at all
    dd.reset_counters()
    quiet = run_job("r3", export(create_address_book=True))
    assert quiet["planned"]["adds"] == 0
    assert dd.calls_to(IMPORT_ROUTE) == 0


def test_unsubscribe_on_exit_and_custom_name_with_options(lytics, dd) -> None:
    dd.add_data_field("CITY")
    book_id = dd.add_address_book("Newsletter (manual)")
    op = export(
        address_book_name="Newsletter (manual)",
        on_exit="unsubscribe",
        opt_in_type="Double",
        email_type="PlainText",
        map_fields={"first_name": "FIRSTNAME", "city": "CITY", "segments": "LASTNAME"},
    )
    first = run_job("r1", op, fields=["email", "first_name", "city", "segments"])
    sample = valid(members(lytics))[3]
    contact = dd.contact(sample["email"])
    assert contact.data_fields["FIRSTNAME"] == sample["first_name"]
    assert contact.data_fields["CITY"] == sample["city"]
    assert not contact.data_fields.get("LASTNAME")
    assert (contact.opt_in_type, contact.email_type) == ("Double", "PlainText")
    assert first["planned"]["dropped_fields"]["segments"] > 0
    lytics.set_version(AUDIENCE, 1)
    second = run_job("r2", op, fields=["email", "first_name", "city", "segments"])
    exited = set(dd.members(book_id)) - {r["email"] for r in members(lytics)}
    assert exited and all(dd.members(book_id)[e] == "Unsubscribed" for e in exited)
    assert second["outcomes"]["unsubscribe:Unsubscribed"] == len(exited)
    assert dd.calls_to("POST /v2/address-books/{book}/contacts/unsubscribe") == len(exited)


def test_trigger_join_actions_and_resubscribe(lytics, dd) -> None:
    book_id = dd.add_address_book("Lytics newsletter")
    rows = valid(members(lytics))
    suppressed, book_unsub = rows[0]["email"], rows[1]["email"]
    dd.add_contact(suppressed, status="Unsubscribed")
    dd.add_contact(book_unsub, books=[book_id], book_status="Unsubscribed")
    result = run_job("r1", export(trigger_join_actions=True, resubscribe_with_no_challenge=True))
    assert dd.calls_to(ADD_ROUTE) >= len(rows)
    assert dd.calls_to(IMPORT_ROUTE) == 0
    assert {email for _, email in dd.join_actions} >= {r["email"] for r in rows[2:]}
    assert dd.contact(suppressed).status == "Subscribed"
    assert dd.members(book_id)[suppressed] == "Subscribed"
    assert dd.members(book_id)[book_unsub] == "Subscribed"
    assert dd.calls_to("POST /v2/contacts/resubscribe-with-no-challenge") == 1
    assert dd.calls_to("POST /v2/address-books/{book}/contacts/resubscribe-with-no-challenge") == 1
    assert result["outcomes"]["add:Subscribed"] == len(rows)


def test_bulk_without_resubscribe_rejects_suppressed_contacts(lytics, dd) -> None:
    book_id = dd.add_address_book("Lytics newsletter")
    suppressed = valid(members(lytics))[0]["email"]
    dd.add_contact(suppressed, status="Unsubscribed")
    result = run_job("r1", export(sync_status=True))
    assert suppressed not in dd.members(book_id)
    rejects = {r["email"]: r for r in read_rejects(result["rejects_file"])}
    assert rejects[suppressed]["status"] == "Unsubscribed"
    assert "enable resubscribe" in rejects[suppressed]["reason"]
    status = {r["email"]: r for r in lytics.collected("dotmailer_export_status")}
    key = f"{dd.account_id}_{book_id}"
    assert status[suppressed]["dm_addressbook_status"] == {key: "unsubscribed"}
    other = valid(members(lytics))[1]["email"]
    assert status[other]["dm_addressbook_status"] == {key: "subscribed"}
    assert status[other]["dm_account_status"] == {str(dd.account_id): "subscribed"}
    assert isinstance(status[other]["dm_addressbook_status_ts"], int)


def test_bulk_resubscribes_account_suppressions_with_challenge(lytics, dd) -> None:
    dd.add_address_book("Lytics newsletter")
    suppressed = valid(members(lytics))[0]["email"]
    dd.add_contact(suppressed, status="Unsubscribed")
    result = run_job("r1", export(resubscribe=True))
    assert dd.challenges == [(None, suppressed)]
    rejects = {r["email"]: r for r in read_rejects(result["rejects_file"])}
    assert rejects[suppressed]["status"] == "PendingOptIn"  # a contact status, as the per-contact path
    assert "challenge" in rejects[suppressed]["reason"]


def test_address_book_status_field_targets_each_members_books(lytics, dd, monkeypatch) -> None:
    first, second = dd.add_address_book("A"), dd.add_address_book("B")
    acct = str(dd.account_id)
    rows = [
        {"_uid": "u1", "email": "one@example.com", "dm_status": {f"{acct}_{first}": "syncing"}},
        {"_uid": "u2", "email": "two@example.com",
         "dm_status": {f"{acct}_{first}": "syncing", f"{acct}_{second}": "syncing"}},
        {"_uid": "u3", "email": "three@example.com", "dm_status": {f"999_{second}": "syncing"}},
        {"_uid": "u4", "email": "four@example.com", "dm_status": {f"{acct}_{second}": "subscribed"}},
    ]  # fmt: skip
    from lytics_provider.pipeline.snapshot import Snapshot
    from lytics_provider.pipeline.workarea import run_dir

    path = run_dir("status_job", "r1") / "snapshot.db"
    with Snapshot(path) as snap:
        snap.add_page(rows, "")
        snap.mark_complete()
    op = DotdigitalExportContactsOperator(
        task_id="deliver",
        job_id="status_job",
        address_book_status_field="dm_status",
        address_book_name="ignored",
        create_address_book=False,
    )
    context = make_context(run_id="r1", xcoms={"scan": {"snapshot": str(path), "audience": {"name": "x"}}})
    result = run_task(op, context)
    assert set(dd.members(first)) == {"one@example.com", "two@example.com"}
    assert set(dd.members(second)) == {"two@example.com"}
    assert dd.book_by_name("ignored") is None
    assert result["planned"]["adds"] == 3


def test_missing_address_book_without_create_fails_before_sending(lytics, dd) -> None:
    with pytest.raises(DotdigitalConfigError, match="create_address_book: true"):
        run_job("r1", export(address_book_name="Nope"))
    assert dd.calls_to(IMPORT_ROUTE) == 0
    assert dd.calls_to("POST /v2/address-books") == 0


def test_unknown_data_field_is_a_clear_error(lytics, dd) -> None:
    with pytest.raises(DotdigitalConfigError, match=r"NOT_A_FIELD.*Create them in Dotdigital"):
        run_job("r1", export(create_address_book=True, map_fields={"city": "NOT_A_FIELD"}))
    assert dd.calls_to(IMPORT_ROUTE) == 0


def test_401_names_the_connection_and_hides_the_password(lytics, dd, monkeypatch) -> None:
    bad = connection_json(dd).replace("sandbox-password", "wrong-secret-pw")
    monkeypatch.setenv("AIRFLOW_CONN_DOTDIGITAL_DEFAULT", bad)
    with pytest.raises(AuthError) as info:
        run_job("r1", export(create_address_book=True))
    assert "dotdigital_default" in str(info.value) and "401" in str(info.value)
    assert "wrong-secret-pw" not in str(info.value)
    assert dd.books == {}


def test_retry_reconnects_to_the_running_import(lytics, dd, monkeypatch) -> None:
    dd.import_polls = 3
    op = export(create_address_book=True)
    polls = {"n": 0}

    def crash_once(seconds: float) -> None:
        polls["n"] += 1
        if polls["n"] == 1:
            raise ConnectionError("worker lost")

    monkeypatch.setattr(_DotdigitalDeliveryOperator, "sleep", staticmethod(crash_once))
    context = make_context(run_id="r1")
    scan = LyticsAudienceScanOperator(task_id="scan", audience=AUDIENCE, job_id=op.job_id, page_size=100)
    run_task(scan, context)
    with pytest.raises(ConnectionError):
        run_task(op, context)
    result = run_task(export(create_address_book=True), context)
    assert dd.calls_to(IMPORT_ROUTE) == 1
    assert len(dd.imports) == 1
    book = dd.book_by_name("Lytics newsletter")
    assert set(dd.members(book.id)) == {r["email"] for r in valid(members(lytics))}
    assert result["imports"][f"{book.id}:1"]["done"] is True


def test_large_audience_splits_into_files(lytics, dd) -> None:
    result = run_job("r1", export(create_address_book=True, max_file_bytes=2000))
    assert dd.calls_to(IMPORT_ROUTE) == len(result["imports"]) > 1
    book = dd.book_by_name("Lytics newsletter")
    assert set(dd.members(book.id)) == {r["email"] for r in valid(members(lytics))}


def test_dry_run_plans_and_sends_nothing(lytics, dd) -> None:
    result = run_job("r1", export(create_address_book=True), dry_run=True)
    assert result["dry_run"] is True
    assert result["planned"]["adds"] == len(valid(members(lytics)))
    assert dd.books == {}
    assert dd.calls_to(IMPORT_ROUTE) == 0


def test_usage_cap_fails_clearly_and_resumes(lytics, dd, monkeypatch) -> None:
    monkeypatch.setattr(DotdigitalHook, "max_usage_wait", 0.0)
    dd.hourly_limit = 3
    with pytest.raises(ApiUsageExceededError, match="resumes on retry"):
        run_job("r1", export(create_address_book=True))
    assert dd.rejected_for_usage >= 1


def deliver_rows(job_id: str, run_id: str, rows: list[dict], **options) -> dict:
    """deliver -> report of a scan of ``rows`` (written straight to the run's snapshot)."""
    from lytics_provider.pipeline.snapshot import Snapshot
    from lytics_provider.pipeline.workarea import run_dir

    path = run_dir(job_id, run_id) / "snapshot.db"
    with Snapshot(path) as snap:
        snap.add_page(rows, "")
        snap.mark_complete()
    context = make_context(run_id=run_id, xcoms={"scan": {"snapshot": str(path), "audience": {}}})
    op = DotdigitalExportContactsOperator(task_id="deliver", job_id=job_id, **options)
    result = run_task(op, context)
    run_task(LyticsCommitRunOperator(task_id="report", job_id=job_id), context)
    return result


def test_map_id_field_removes_by_this_accounts_contact_id(dd) -> None:
    """ID Field "may be a map field if importing users from multiple accounts": exits are removed
    by the contact id of this connection's account, never by another account's id, and a member
    whose map has no entry for this account is looked up by email."""
    acct = str(dd.account_id)
    book = dd.add_address_book("Multi")
    emails = [f"multi{i}@example.com" for i in range(4)]
    ids = {email: dd.add_contact(email) for email in emails}
    maps = [
        {acct: ids[emails[0]], "999": ids[emails[2]]},
        {acct: str(ids[emails[1]])},
        {"999": ids[emails[0]]},
        {acct: ids[emails[3]]},
    ]
    options = {"address_book_name": "Multi", "id_field": "dm_ids"}
    rows = [
        {"_uid": f"u{i}", "email": e, "dm_ids": m} for i, (e, m) in enumerate(zip(emails, maps, strict=True))
    ]

    deliver_rows("map_ids", "r1", rows, **options)
    assert set(dd.members(book)) == set(emails)
    dd.reset_counters()
    second = deliver_rows("map_ids", "r2", rows[2:], **options)
    assert set(dd.members(book)) == set(emails[2:])
    assert second["outcomes"]["remove:Removed"] == 2
    assert dd.calls_to("GET /v2/address-books/{book}/contacts") == 0  # the ids came from the map
    third = deliver_rows("map_ids", "r3", rows[3:], **options)
    assert set(dd.members(book)) == {emails[3]}
    assert third["outcomes"]["remove:Removed"] == 1
    assert dd.calls_to("GET /v2/address-books/{book}/contacts") == 1  # no id for this account: lookup


def test_address_book_status_field_gets_the_contacts_status_and_keeps_the_book(lytics, dd) -> None:
    """ "The status will be updated to reflect the contact's status": each "syncing" entry is
    written back with the contact's status, the entry keeps its book (no exit), and taking the
    entry out of the map removes the contact from that book only."""
    first, second = dd.add_address_book("A"), dd.add_address_book("B")
    acct = str(dd.account_id)
    a, b = f"{acct}_{first}", f"{acct}_{second}"
    dd.add_contact("four@example.com", books=[second])
    options = {"address_book_status_field": "dm_status"}
    rows = [
        {"_uid": "u1", "email": "one@example.com", "dm_status": {a: "syncing"}},
        {"_uid": "u2", "email": "two@example.com", "dm_status": {a: "syncing", b: "syncing"}},
        {"_uid": "u4", "email": "four@example.com", "dm_status": {b: "subscribed"}},
    ]
    deliver_rows("status_back", "r1", rows, **options)
    written = lytics.collected("dotmailer_export_status")
    assert sorted((r["email"], *r["dm_status"].items()) for r in written) == [
        ("one@example.com", (a, "subscribed")),
        ("two@example.com", (a, "subscribed")),
        ("two@example.com", (b, "subscribed")),
    ]
    assert all(set(r) == {"email", "dm_status"} for r in written)  # Sync Status is off

    # Lytics now holds the statuses; the next run sees them and keeps every book.
    rows[0]["dm_status"] = {a: "subscribed"}
    rows[1]["dm_status"] = {a: "subscribed", b: "subscribed"}
    dd.reset_counters()
    second_run = deliver_rows("status_back", "r2", rows, **options)
    assert not any(key.startswith("remove") for key in second_run["outcomes"])
    assert dd.calls_to("POST /v2/address-books/{book}/contacts/delete") == 0
    assert set(dd.members(first)) == {"one@example.com", "two@example.com"}
    assert set(dd.members(second)) == {"two@example.com", "four@example.com"}

    # Taking an entry out of the map removes the contact from that book; u4 is not this job's.
    rows[1]["dm_status"] = {a: "subscribed"}
    rows[2]["dm_status"] = {}
    third = deliver_rows("status_back", "r3", rows, **options)
    assert third["outcomes"]["remove:Removed"] == 1
    assert set(dd.members(first)) == {"one@example.com", "two@example.com"}
    assert set(dd.members(second)) == {"four@example.com"}
