"""Sync Status and the Address Book Status Field: every contact's outcome written to Lytics'
``dotmailer_export_status`` stream.

With Sync Status the records carry ``dm_addressbook_status`` (``"{account}_{book}": status``),
``dm_account_status`` and ``dm_addressbook_status_ts``. With an Address Book Status Field the
records also carry that field, so the ``"syncing"`` entries that chose the address books are
"updated to reflect the contact's status". Which entries this job wrote is kept per job
(:func:`status_field_entries`): such an entry keeps its address book a target whatever status it
now holds, so the write-back never turns into an exit; taking the entry out of the map does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from lytics_provider.operators.dotdigital_options import DotdigitalStep
from lytics_provider.pipeline.workarea import job_dir
from lytics_provider.sync.identifiers import is_email
from lytics_provider.sync.plan import SyncPlan
from lytics_provider.sync.refs import RefStore

STATUS_STREAM = "dotmailer_export_status"
STATUS_FIELD_ENTRIES = "dotdigital_status_field.db"


def status_field_entries(job_id: str) -> RefStore:
    """The job's ``(address book, email) -> status`` entries it wrote to the Address Book Status Field."""
    return RefStore(job_id, job_dir(job_id) / STATUS_FIELD_ENTRIES)


class DotdigitalStatusSync(DotdigitalStep):
    """Writes the run's outcomes to ``dotmailer_export_status``."""

    address_book_status_field: str | None = None

    def _writes_status(self) -> bool:
        return self.options.sync_status or bool(self.address_book_status_field)

    def _remember_entries(self, plan: SyncPlan) -> None:
        """Keep the Address Book Status Field entries this run writes (before writing them)."""
        books = sorted({book for _, book, *_ in plan.iter_outcomes() if book != "account"})
        entries = status_field_entries(self.job_id)
        try:
            for book in books:
                entries.save(
                    book,
                    (
                        (email, status.lower())
                        for email, target, _, _, status, _, _ in plan.iter_outcomes()
                        if target == book and is_email(email)
                    ),
                )
        finally:
            entries.close()

    def _status_records(self, plan: SyncPlan) -> Iterator[dict[str, Any]]:
        stamp = int(time.time() * 1000)
        field = self.address_book_status_field
        for email, book, _, _, status, account_status, _ in plan.iter_outcomes():
            if not is_email(email):
                continue
            record: dict[str, Any] = {"email": email}
            entry = {f"{self.account_id}_{book}": status.lower()} if book != "account" else None
            if field and entry:
                record[field] = entry
            if self.options.sync_status:
                record["dm_addressbook_status_ts"] = stamp
                if entry:
                    record["dm_addressbook_status"] = entry
                if account_status:
                    record["dm_account_status"] = {self.account_id: account_status.lower()}
            if len(record) > 1:
                yield record

    def _sync_status(self, plan: SyncPlan) -> dict[str, int]:
        from lytics_provider.hooks.lytics import LyticsHook

        if self.address_book_status_field:
            self._remember_entries(plan)
        result = LyticsHook(self.lytics_conn_id).collect_json(STATUS_STREAM, self._status_records(plan))
        self.log.info("Wrote %d status records to %s", result.accepted, STATUS_STREAM)
        return {"accepted": result.accepted, "rejected": result.rejected, "requests": result.requests}
