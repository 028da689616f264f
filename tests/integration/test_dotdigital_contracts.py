"""The Dotdigital client and export engine against the contracts Dotdigital publishes.

Each test names where its contract is written. The Dotdigital side is the loopback sandbox, which
follows the same documented shapes (faults file, upload limits, rate-limit headers).
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest

from lytics_provider.hooks.dotdigital import (
    BOOK_IMPORT_MAX_BYTES,
    ApiUsageExceededError,
    DotdigitalError,
    DotdigitalHook,
)
from lytics_provider.operators.dotdigital import (
    DotdigitalExportContactsOperator,
    DotdigitalExportModifiedContactsOperator,
    DotdigitalImportError,
    _DotdigitalDeliveryOperator,
)
from lytics_provider.pipeline.ratelimit import CallLedger
from lytics_provider.pipeline.snapshot import Snapshot
from lytics_provider.pipeline.workarea import run_dir
from lytics_sandbox import dotdigital as dd_sandbox
from lytics_sandbox.faults import FaultRule
from tests.helpers import make_context, run_task

BOOK_IMPORT = "POST /v2/address-books/{book}/contacts/import"
ACCOUNT_IMPORT = "POST /v2/contacts/import"
BOOK_ADD = "POST /v2/address-books/{book}/contacts"
RESUBSCRIBE = "POST /v2/contacts/resubscribe"
RESUBSCRIBE_NO_CHALLENGE = "POST /v2/contacts/resubscribe-with-no-challenge"


def snapshot_of(job_id: str, run_id: str, rows: list[dict]) -> dict:
    """A finished scan of ``rows`` (the scan task's XCom), written straight to its snapshot file."""
    path = run_dir(job_id, run_id) / "snapshot.db"
    with Snapshot(path) as snap:
        for start in range(0, len(rows), 20_000):
            snap.add_page(rows[start : start + 20_000], "")
        snap.mark_complete()
    return {"snapshot": str(path), "audience": {"name": "contracts"}}


def deliver(op: _DotdigitalDeliveryOperator, scan: dict, run_id: str = "r1") -> dict:
    return run_task(op, make_context(run_id=run_id, xcoms={"scan": scan}))


def people(count: int, prefix: str = "member") -> list[dict]:
    return [
        {"_uid": f"u{i}", "email": f"{prefix}{i}@example.com", "first_name": f"First{i}", "score": i}
        for i in range(count)
    ]


def read_rejects(path: str) -> dict[str, dict]:
    with Path(path).open(newline="") as handle:
        return {row["email"]: row for row in csv.DictReader(handle)}


# -- 1. Export Modified Contacts with resubscribe ------------------------------------------------
def test_modified_contacts_resubscribe_stays_account_wide(dd, lytics) -> None:
    """An account-wide import's suppressed members are resubscribed at account level, carrying
    their data fields; no call names an address book (there is no ``account`` book id).

    Contract: v2 OpenAPI, repository api-evangelist/dotdigital, path
    openapi/_original/dotdigital-v2-api-swagger.json: ``{addressBookId}`` is an int32 path
    parameter; ``POST /v2/contacts/resubscribe-with-no-challenge`` takes an ``ApiContactResubscription``
    whose ``unsubscribedContact`` is an ``ApiContact`` (with ``dataFields``).
    """
    dd.add_data_field("SCORE", "Numeric")
    rows = people(30)
    unsubscribed = [rows[0]["email"], rows[1]["email"]]
    for email in unsubscribed:
        dd.add_contact(email, status="Unsubscribed")
    bounced = rows[2]["email"]
    dd.add_contact(bounced, status="HardBounced")
    op = DotdigitalExportModifiedContactsOperator(
        task_id="deliver",
        job_id="dd_mod_resub",
        map_fields={"score": "SCORE"},
        resubscribe_with_no_challenge=True,
        sync_status=True,
    )
    result = deliver(op, snapshot_of("dd_mod_resub", "r1", rows))
    assert dd.calls_to(ACCOUNT_IMPORT) == 1
    assert dd.calls_to(BOOK_ADD) == 0
    assert dd.calls_to(RESUBSCRIBE_NO_CHALLENGE) == len(unsubscribed)  # not the hard bounce
    for email in unsubscribed:
        contact = dd.contact(email)
        assert contact.status == "Subscribed"
        assert contact.data_fields["SCORE"] == str(int(email.removeprefix("member").split("@")[0]))
    assert result["outcomes"] == {"add:Subscribed": 29, "add:HardBounced": 1}
    rejects = read_rejects(result["rejects_file"])
    assert set(rejects) == {bounced}
    assert "Hard Bounced" in rejects[bounced]["reason"]
    status = {r["email"]: r for r in lytics.collected("dotmailer_export_status")}
    assert status[bounced]["dm_account_status"] == {str(dd.account_id): "hardbounced"}
    assert status[unsubscribed[0]]["dm_account_status"] == {str(dd.account_id): "subscribed"}


def test_resubscribes_are_not_repeated_when_the_task_is_retried(dd) -> None:
    """Each refused member is resubscribed (challenged) once, although the task fails half-way
    and is retried: a second challenge would email the contact again.

    Contract: v2 OpenAPI (api-evangelist/dotdigital, openapi/_original/dotdigital-v2-api-swagger.json),
    ``POST /v2/contacts/resubscribe`` answers ``ContactChallenged`` (ApiResubscribeStatuses) and
    sends the contact a challenge.
    """
    dd.add_data_field("SCORE", "Numeric")
    rows = people(12)
    suppressed = sorted(r["email"] for r in rows[:5])
    for email in suppressed:
        dd.add_contact(email, status="Unsubscribed")
    scan = snapshot_of("dd_mod_retry", "r1", rows)

    def operator() -> DotdigitalExportModifiedContactsOperator:
        return DotdigitalExportModifiedContactsOperator(
            task_id="deliver", job_id="dd_mod_retry", map_fields={"score": "SCORE"}, resubscribe=True
        )

    dd.faults.add(FaultRule("5xx", status=503, path_regex=r"^/v2/contacts/resubscribe$", after=2, times=8))
    with pytest.raises(DotdigitalError):
        deliver(operator(), scan)
    assert [email for _, email in dd.challenges] == suppressed[:2]
    dd.faults.clear()
    result = deliver(operator(), scan)
    assert [email for _, email in dd.challenges] == suppressed
    assert result["outcomes"] == {"add:Subscribed": 7, "add:PendingOptIn": 5}
    assert dd.calls_to(ACCOUNT_IMPORT) == 1


# -- 2. The faults file -------------------------------------------------------------------------
def test_book_import_maps_each_documented_reason(dd) -> None:
    """Rejected rows come back as ``reason,email`` with plain-text reasons; each becomes a contact
    status (or ``Rejected``) and only an unsubscribe is resubscribed; a bad data field value
    (``Failures``) is a reject and costs no resubscribe call.

    Contract: dotmailer/dotmailer-magento2-extension,
    Model/Sync/Importer/ReportHandler/V2ImporterReportHandler.php (row shape and reasons).
    """
    dd.add_data_field("SCORE", "Numeric")
    book = dd.add_address_book("Contracts")
    rows = people(10)
    rows[3]["score"] = "not a number"
    statuses = {0: "Unsubscribed", 1: "HardBounced", 2: "SharedSuppression", 4: "IspComplained"}
    for index, status in statuses.items():
        dd.add_contact(rows[index]["email"], status=status)
    op = DotdigitalExportContactsOperator(
        task_id="deliver", job_id="dd_reasons", address_book_name="Contracts",
        map_fields={"score": "SCORE"}, resubscribe_with_no_challenge=True,
    )  # fmt: skip
    result = deliver(op, snapshot_of("dd_reasons", "r1", rows))
    assert dd.calls_to(RESUBSCRIBE_NO_CHALLENGE) == 1
    rejects = read_rejects(result["rejects_file"])
    got = {email: (r["status"], r["reason"].split(": ")[1]) for email, r in rejects.items()}
    assert got == {
        rows[1]["email"]: ("HardBounced", "Hard Bounced"),
        rows[2]["email"]: ("SharedSuppression", "Globally Suppressed"),
        rows[3]["email"]: ("Rejected", "Failures"),
        rows[4]["email"]: ("IspComplained", "Isp Complaints"),
    }
    assert dd.members(book)[rows[0]["email"]] == "Subscribed"
    assert result["outcomes"]["add:Subscribed"] == 6


def test_unknown_faults_header_fails_instead_of_counting_rejects_as_added(dd) -> None:
    """A faults file whose header is not the documented Reason/Email pair stops the task with
    an error naming the header; nothing of the file is recorded as subscribed.

    Contract: dotmailer/dotmailer-magento2-extension,
    Model/Sync/Importer/ReportHandler/V2ImporterReportHandler.php.
    """
    dd.add_address_book("Contracts")
    rows = people(5)
    dd.add_contact(rows[0]["email"], status="Unsubscribed")
    dd.faults_header = ["Fault", "Address"]
    op = DotdigitalExportContactsOperator(
        task_id="deliver", job_id="dd_header", address_book_name="Contracts"
    )
    with pytest.raises(DotdigitalImportError, match=r"unrecognised header \['Fault', 'Address'\]"):
        deliver(op, snapshot_of("dd_header", "r1", rows))
    assert not (run_dir("dd_header", "r1") / "rejects.csv").exists()


def test_unknown_fault_reason_fails_naming_it(dd, monkeypatch) -> None:
    """A reason outside the documented vocabulary stops the task with an error naming it.

    Contract: dotmailer/dotmailer-magento2-extension,
    Model/Sync/Importer/ReportHandler/V2ImporterReportHandler.php.
    """
    monkeypatch.setitem(dd_sandbox.FAULT_REASON_OF_STATUS, "HardBounced", "Quarantined")
    dd.add_address_book("Contracts")
    rows = people(5)
    dd.add_contact(rows[0]["email"], status="HardBounced")
    op = DotdigitalExportContactsOperator(
        task_id="deliver", job_id="dd_reason", address_book_name="Contracts"
    )
    with pytest.raises(DotdigitalImportError, match="unknown fault reason 'Quarantined'"):
        deliver(op, snapshot_of("dd_reason", "r1", rows))


# -- 3. Upload size per endpoint ----------------------------------------------------------------
# 300,000 rows through planning, file writing, the stand-in's import and the outcome records take
# about 20 s on a 2-core machine, hence the mark (the test still runs with the suite).
@pytest.mark.slow
def test_first_export_of_300000_members_keeps_each_file_within_10_mb(dd) -> None:
    """A 300,000-member first export to an address book is split into files of at most 10 MB,
    the limit the address-book import endpoint documents; every member lands in the book.

    Contract: https://developer.dotdigital.com/reference/bulk-import-contacts-in-address-book
    (10 MB) — the with-merge-option and account-wide pages
    (…/bulk-import-contacts-in-address-book-with-merge-option, …/bulk-import-contacts) state 50 MB.
    """
    members = 300_000
    rows = [{"_uid": f"u{i}", "email": f"subscriber.number.{i}@example-mail.com"} for i in range(members)]
    op = DotdigitalExportContactsOperator(task_id="deliver", job_id="dd_big", create_address_book=True)
    result = deliver(op, snapshot_of("dd_big", "r1", rows))
    sizes = [size for route, size in dd.upload_sizes]
    assert len(sizes) == dd.calls_to(BOOK_IMPORT) == len(result["imports"]) >= 2
    assert sum(sizes) > BOOK_IMPORT_MAX_BYTES and max(sizes) <= BOOK_IMPORT_MAX_BYTES
    book = dd.book_by_name("Lytics contracts")
    assert len(book.members) == members
    assert result["outcomes"] == {"add:Subscribed": members}
    assert sum(state["rows"] for state in result["imports"].values()) == members


def test_sandbox_enforces_the_documented_limit_per_endpoint(dd, tmp_path) -> None:
    """The stand-in refuses an address-book import over 10 MB and takes the same file on the
    account-wide endpoint (50 MB), so the engine's splitting is tested against the limits.

    Contract: https://developer.dotdigital.com/reference/bulk-import-contacts-in-address-book and
    https://developer.dotdigital.com/reference/bulk-import-contacts.
    """
    book = dd.add_address_book("Limits")
    path = tmp_path / "big.csv"
    line = "someone.with.a.long.address@example.com,Html,Unknown\r\n"
    with path.open("w", newline="") as handle:
        handle.write("Email,EmailType,OptInType\r\n")
        handle.write(line * (BOOK_IMPORT_MAX_BYTES // len(line) + 10))
    hook = DotdigitalHook()
    with pytest.raises(DotdigitalError) as info:
        hook.import_contacts(path, book_id=book)
    assert info.value.code == "ERROR_IMPORT_FILE_TOO_LARGE"
    assert hook.import_contacts(path)["status"] == "NotFinished"


# -- rate limits ----------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()) // 60 * 60 + 5)
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.parametrize("style", ["epoch", "seconds"])
def test_rate_limit_reset_pauses_the_shared_ledger_in_both_readings(dd, tmp_path, style) -> None:
    """``X-RateLimit-Reset`` as a UTC epoch time or as seconds until the reset: either way every
    user of the ledger waits until the reset, and the call then succeeds.

    Contract: the epoch reading — https://developer.dotdigital.com/docs/call-rate-limits and the
    error-code list (api-evangelist/dotdigital, errors/dotdigital-error-codes.yml); the seconds
    reading — dotmailer/dotdigital-php, src/Exception/TooManyRequestsException.php.
    """
    clock = Clock()
    dd.clock = clock
    dd.tier_limit_per_minute = 2
    dd.rate_limit_reset = style
    ledger = CallLedger(tmp_path / "ledger.db", limit=1000, clock=clock, sleep=clock.sleep)
    hook = DotdigitalHook(ledger=ledger, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        assert hook.server_time()
    reset = clock.now - clock.now % 60  # the next minute, where the tier frees up
    assert ledger.usage().paused_until == reset
    assert clock.now >= reset and clock.slept and sum(clock.slept) <= 60


@pytest.mark.parametrize("status", [400, 403, 429])
def test_usage_cap_is_recognised_by_its_code_whatever_the_status(dd, tmp_path, status) -> None:
    """``ERROR_APIUSAGE_EXCEEDED`` pauses and retries (then fails as a usage cap), whatever HTTP
    status it arrives with; it is never reported as bad credentials.

    Contract: the code — dotmailer/dotmailer-magento2-extension, Model/Apiconnector/Client.php
    (message constant ending in the code); its status is documented only second-hand as 400
    (api-evangelist/dotdigital, errors/dotdigital-error-codes.yml).
    """
    clock = Clock()
    dd.usage_exceeded_status = status
    dd.hourly_limit = 1
    ledger = CallLedger(tmp_path / "ledger.db", limit=1000, max_wait=10_000, clock=clock, sleep=clock.sleep)
    hook = DotdigitalHook(
        ledger=ledger, clock=clock, sleep=clock.sleep, usage_backoff=300, max_usage_wait=900
    )
    hook.server_time()
    with pytest.raises(ApiUsageExceededError) as info:
        hook.server_time()
    assert info.value.code == "ERROR_APIUSAGE_EXCEEDED" and info.value.status == status
    assert dd.rejected_for_usage == 4  # the first answer and three retries after 300 s pauses
    assert sum(clock.slept) == 900


def test_usage_cap_lifts_and_the_call_goes_through(dd, tmp_path) -> None:
    """After a pause the capped call is retried and succeeds once the hour's count dropped.

    Contract: api-evangelist/dotdigital, rate-limits/dotdigital-rate-limits.yml (rolling hour).
    """
    clock = Clock()
    dd.clock = clock
    dd.usage_exceeded_status = 403
    dd.hourly_limit = 1
    ledger = CallLedger(tmp_path / "ledger.db", limit=1000, max_wait=10_000, clock=clock, sleep=clock.sleep)
    hook = DotdigitalHook(
        ledger=ledger, clock=clock, sleep=clock.sleep, usage_backoff=1800, max_usage_wait=7200
    )
    hook.server_time()
    assert json.dumps(hook.server_time())
    assert dd.rejected_for_usage == 2 and sum(clock.slept) == 3600
