"""Dotdigital bulk removal of a plan's exits by contact id (the ID Field, else the per-job
``email -> contact id`` map kept fresh from the address book listing), reconnected to on retry."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from lytics_provider.hooks.dotdigital import DotdigitalHook
from lytics_provider.operators.dotdigital_options import DotdigitalImportError, DotdigitalStep
from lytics_provider.pipeline.workarea import job_dir
from lytics_provider.sync.plan import SyncPlan

REMOVE_CHUNK = 10_000


class ContactIdMap:
    """Per-job ``email -> Dotdigital contact id`` per address book, refreshed from the book listing."""

    def __init__(self, job_id: str) -> None:
        path = job_dir(job_id) / "dotdigital_contact_ids.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.executescript(
            "CREATE TABLE IF NOT EXISTS ids (book TEXT, email TEXT, id INTEGER, PRIMARY KEY (book, email));"
            "CREATE TABLE IF NOT EXISTS synced (book TEXT PRIMARY KEY, at REAL NOT NULL);"
        )

    def close(self) -> None:
        self.db.close()

    def lookup(self, book: str, emails: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(emails), 500):
            chunk = emails[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for email, cid in self.db.execute(
                f"SELECT email, id FROM ids WHERE book = ? AND email IN ({marks})", (book, *chunk)
            ):
                found[email] = int(cid)
        return found

    def refresh(self, hook: DotdigitalHook, book: str, clock: Any = time.time) -> int:
        """Add the book's contacts changed since the last refresh (all of them the first time)."""
        row = self.db.execute("SELECT at FROM synced WHERE book = ?", (book,)).fetchone()
        started = clock()
        if row is None:
            contacts = hook.iter_address_book_contacts(book)
        else:
            since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(row[0] - 3600))
            contacts = hook.iter_modified_since(since, book_id=book, full=False)
        added = 0
        batch: list[tuple[str, str, int]] = []
        for contact in contacts:
            batch.append((book, str(contact.get("email") or "").lower(), int(contact["id"])))
            if len(batch) >= 5000:
                added += self._store(batch)
                batch = []
        added += self._store(batch)
        self.db.execute("INSERT OR REPLACE INTO synced VALUES (?, ?)", (book, started))
        return added

    def _store(self, rows: list[tuple[str, str, int]]) -> int:
        if rows:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO ids VALUES (?, ?, ?)", rows)
            self.db.execute("COMMIT")
        return len(rows)

    def forget(self, book: str, emails: list[str]) -> None:
        self.db.execute("BEGIN")
        self.db.executemany("DELETE FROM ids WHERE book = ? AND email = ?", [(book, e) for e in emails])
        self.db.execute("COMMIT")


class DotdigitalRemovalSteps(DotdigitalStep):
    """Exits removed from an address book in bulk, once each across retries."""

    def _removes(self, hook: DotdigitalHook, plan: SyncPlan, book: str) -> None:
        key = f"removal:{book}"
        state = plan.step(key) or {}
        if state.get("done"):
            return
        if "ids" not in state:
            rows = list(plan.iter_work("remove", book))
            known: dict[str, int] = {}
            for _, _, email, cid, _ in rows:
                if cid and cid.isdigit():
                    known[email] = int(cid)
            missing = [email for _, _, email, cid, _ in rows if email not in known]
            if missing:
                ids = ContactIdMap(self.job_id)
                try:
                    found = ids.lookup(book, missing)
                    if len(found) < len(missing):
                        ids.refresh(hook, book)
                        found = ids.lookup(book, missing)
                finally:
                    ids.close()
                known.update(found)
            state = {"ids": sorted(set(known.values())), "jobs": []}
            plan.record(
                (email, book, "remove", uid, "Removed" if email in known else "NotInAddressBook", None, None)
                for _, uid, email, _, _ in rows
            )
            plan.set_step(key, state)
        ids_to_remove: list[int] = state["ids"]
        for number, start in enumerate(range(0, len(ids_to_remove), REMOVE_CHUNK)):
            if number < len(state["jobs"]) and state["jobs"][number].get("done"):
                continue
            if number >= len(state["jobs"]):
                answer = hook.bulk_remove(book, ids_to_remove[start : start + REMOVE_CHUNK])
                state["jobs"].append({"id": answer["id"]})
                plan.set_step(key, state)
            job = state["jobs"][number]
            status = self._wait(
                lambda j=job["id"]: hook.deletion_status(j)["status"],
                "Started",
                job["id"],
                "deletion_status_of",
            )
            if status != "Completed":
                raise DotdigitalImportError(f"Dotdigital bulk removal {job['id']} ended as {status!r}")
            job["done"] = True
            plan.set_step(key, state)
        emails = [email for _, _, email, _, _ in plan.iter_work("remove", book)]
        ids = ContactIdMap(self.job_id)
        try:
            ids.forget(book, emails)
        finally:
            ids.close()
        state["done"] = True
        plan.set_step(key, state)
