"""Import Contacts & Activity: incremental reads into dotmailer_contacts / dotmailer_activity."""

from __future__ import annotations

import pytest

from lytics_provider.pipeline import http
from lytics_provider.pipeline.workarea import JobState
from lytics_provider.transfers.dotdigital_to_lytics import DotdigitalToLyticsOperator
from lytics_sandbox.dotdigital import DotdigitalSandbox, parse_api_date
from lytics_sandbox.lytics import LyticsSandbox
from tests.helpers import make_context, run_task


class Clock:
    def __init__(self) -> None:
        self.now = parse_api_date("2026-03-01T09:00:00")

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def env(lytics: LyticsSandbox, dd: DotdigitalSandbox) -> tuple[LyticsSandbox, DotdigitalSandbox, Clock]:
    dd.clock = clock = Clock()
    return lytics, dd, clock


def importer() -> DotdigitalToLyticsOperator:
    return DotdigitalToLyticsOperator(task_id="import", job_id="dd_import")


def test_first_import_then_only_changes_since_the_watermark(env) -> None:
    lytics, dd, clock = env
    dd.add_data_field("BIRTHDAY", "Date")
    dd.add_data_field("PLAN")
    news, promo = dd.add_address_book("News"), dd.add_address_book("Promo")
    ann = dd.add_contact(
        "ann@example.com",
        books=[news, promo],
        data_fields={"FIRSTNAME": "Ann", "LASTNAME": "Lee", "BIRTHDAY": "1990-02-03", "PLAN": "gold"},
    )
    bob = dd.add_contact("bob@example.com", books=[news], book_status="Unsubscribed")
    campaign = dd.add_campaign("March news")
    dd.record_send(campaign, "ann@example.com", clock.now - 60)
    dd.record_open(campaign, "ann@example.com", clock.now - 30)
    dd.record_click(campaign, "ann@example.com", "https://example.com/a", clock.now - 20)
    clock.now += 1

    first = run_task(importer(), make_context(run_id="i1"))
    contacts = {r["email"]: r for r in lytics.collected("dotmailer_contacts")}
    acct = str(dd.account_id)
    ann_rec = contacts["ann@example.com"]
    assert ann_rec["dm_contact_id"] == str(ann)
    assert (ann_rec["first_name"], ann_rec["last_name"], ann_rec["birthdate"]) == ("Ann", "Lee", "1990-02-03")
    assert ann_rec["dm_plan"] == "gold"
    assert ann_rec["dm_address_books"] == sorted([str(news), str(promo)])
    assert ann_rec["dm_addressbook_status"] == {
        f"{acct}_{news}": "subscribed",
        f"{acct}_{promo}": "subscribed",
    }
    assert ann_rec["dm_email_type"] == "Html" and ann_rec["dm_optin_type"] == "Unknown"
    assert contacts["bob@example.com"]["dm_addressbook_status"] == {f"{acct}_{news}": "unsubscribed"}
    assert contacts["bob@example.com"]["dm_contact_id"] == str(bob)
    events = lytics.collected("dotmailer_activity")
    assert sorted(e["event"] for e in events) == ["click", "open", "send"]
    assert next(e for e in events if e["event"] == "click")["url"] == "https://example.com/a"
    assert first["contacts"] == 2 and first["events"] == 3
    watermark = JobState("dd_import").get("watermark")
    assert parse_api_date(watermark) == clock.now

    lytics.clear_collected()
    clock.now += 3600
    dd.add_contact("cy@example.com", books=[promo])
    dd.record_open(campaign, "ann@example.com", clock.now)
    second = run_task(importer(), make_context(run_id="i2"))
    assert [r["email"] for r in lytics.collected("dotmailer_contacts")] == ["cy@example.com"]
    assert [e["event"] for e in lytics.collected("dotmailer_activity")] == ["open"]
    assert second["since"] == watermark


def test_failed_delivery_to_lytics_keeps_the_watermark(env) -> None:
    lytics, dd, _ = env
    dd.add_contact("ann@example.com", books=[dd.add_address_book("News")])
    lytics.faults.add("5xx", path_regex="/collect/json/dotmailer_contacts", times=None)
    op = importer()
    with pytest.raises(http.ServiceError):
        run_task(op, make_context(run_id="i1"))
    assert JobState("dd_import").get("watermark") is None
    lytics.faults.clear()
    run_task(importer(), make_context(run_id="i1"))
    assert [r["email"] for r in lytics.collected("dotmailer_contacts")] == ["ann@example.com"]


def test_dry_run_reads_but_commits_nothing(env) -> None:
    lytics, dd, _ = env
    dd.add_contact("ann@example.com", books=[dd.add_address_book("News")])
    report = run_task(importer(), make_context(run_id="i1", params={"dry_run": True}))
    assert report["contacts"] == 1 and report["dry_run"] is True
    assert lytics.collected("dotmailer_contacts") == []
    assert JobState("dd_import").get("watermark") is None
