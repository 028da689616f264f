"""Sync Status and the Address Book Status Field: every contact's outcome written to Lytics'
``dotmailer_export_status`` stream.

With Sync Status the records carry ``dm_addressbook_status`` (``"{account}_{book}": status``),
``dm_account_status`` and ``dm_addressbook_status_ts``. With an Address Book Status Field the
records also carry that field, so the ``"syncing"`` entries that chose the address books are
"updated to reflect the contact's status". Which entries this job wrote is kept per job
(:class:`StatusFieldEntries`): such an entry keeps its address book a target whatever status it
now holds, so the write-back never turns into an exit; taking the entry out of the map does.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from typing import Any

from lytics_provider.operators.dotdigital_options import DotdigitalStep
from lytics_provider.pipeline.workarea import job_dir
from lytics_provider.sync.identifiers import is_email
from lytics_provider.sync.plan import SyncPlan

STATUS_STREAM = "dotmailer_export_status"


class StatusFieldEntries:
    """Per-job ``(email, address book)`` entries of the Address Book Status Field this job wrote."""

    def __init__(self, job_id: str) -> None:
        path = job_dir(job_id) / "dotdigital_status_field.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS entries (email TEXT, book TEXT, PRIMARY KEY (email, book))"
        )

    def close(self) -> None:
        self.db.close()

    def add(self, entries: Iterable[tuple[str, str]]) -> None:
        self.db.execute("BEGIN")
        try:
            self.db.executemany("INSERT OR IGNORE INTO entries VALUES (?, ?)", entries)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def written(self, email: str, book: str) -> bool:
        row = self.db.execute("SELECT 1 FROM entries WHERE email = ? AND book = ?", (email, book)).fetchone()
        return row is not None


class DotdigitalStatusSync(DotdigitalStep):
    """Writes the run's outcomes to ``dotmailer_export_status``."""

    address_book_status_field: str | None = None

    def _writes_status(self) -> bool:
        return self.options.sync_status or bool(self.address_book_status_field)

    def _book_outcomes(self, plan: SyncPlan) -> Iterator[tuple[str, str]]:
        for email, book, *_ in plan.iter_outcomes():
            if is_email(email) and book != "account":
                yield email, book

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
            entries = StatusFieldEntries(self.job_id)
            try:
                entries.add(self._book_outcomes(plan))
            finally:
                entries.close()
        result = LyticsHook(self.lytics_conn_id).collect_json(STATUS_STREAM, self._status_records(plan))
        self.log.info("Wrote %d status records to %s", result.accepted, STATUS_STREAM)
        return {"accepted": result.accepted, "rejected": result.rejected, "requests": result.requests}
