"""Dotdigital bulk import of a plan's adds: CSV files within the endpoint's size limit, one import
each, reconnected to on retry; rejected rows read back from ``report-faults`` (and resubscribed
when asked)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lytics_provider.hooks.dotdigital import IMPORT_DONE, IMPORT_PENDING, DotdigitalHook
from lytics_provider.operators.dotdigital_options import DotdigitalImportError
from lytics_provider.operators.dotdigital_per_contact import DotdigitalPerContactSteps
from lytics_provider.pipeline.dotdigital_faults import FaultsFileError, faults_by_email
from lytics_provider.sync.plan import Outcome, SyncPlan


def csv_row_bytes(values: Sequence[str]) -> int:
    """An upper bound of the UTF-8 bytes of one CSV row (every value quoted, quotes doubled, CRLF)."""
    total = 2
    for value in values:
        total += (len(value) if value.isascii() else len(value.encode("utf-8"))) + value.count('"') + 3
    return total


class DotdigitalBulkImportSteps(DotdigitalPerContactSteps):
    """Adds through bulk imports; a refused suppressed contact is resubscribed one by one."""

    def _write_batches(self, plan: SyncPlan, book: str, folder: Path) -> list[dict[str, Any]]:
        """Write the book's adds as CSV files within the import endpoint's documented size limit
        (and ``max_file_bytes``); deterministic names."""
        opts = self.options
        endpoint_limit = DotdigitalHook.import_size_limit(None if book == "account" else book)
        limit = min(opts.max_file_bytes, endpoint_limit)
        header = ["Email", "EmailType", "OptInType", *opts.columns]
        batches: list[dict[str, Any]] = []
        handle = writer = None
        size = 0
        try:
            for seq, _, email, _, payload in plan.iter_work("add", book):
                fields = json.loads(payload or "{}")
                line = [email, opts.email_type, opts.opt_in_type, *(fields.get(c, "") for c in opts.columns)]
                approx = csv_row_bytes(line)
                if handle is None or size + approx > limit:
                    if handle is not None:
                        handle.close()
                    path = folder / f"dotdigital-{book}-{len(batches) + 1:04d}.csv"
                    batches.append({"file": str(path), "first": seq, "last": seq, "rows": 0})
                    handle = path.open("w", newline="", encoding="utf-8")
                    writer = csv.writer(handle, lineterminator="\r\n")
                    writer.writerow(header)
                    size = csv_row_bytes(header)
                assert writer is not None
                writer.writerow(line)
                size += approx
                batches[-1]["last"] = seq
                batches[-1]["rows"] += 1
        finally:
            if handle is not None:
                handle.close()
        return batches

    def _add_in_bulk(self, hook: DotdigitalHook, plan: SyncPlan, book: str, folder: Path) -> None:
        key = f"batches:{book}"
        batches = plan.step(key)
        if batches is None:
            batches = self._write_batches(plan, book, folder)
            plan.set_step(key, batches)
        imports = plan.step("imports") or {}
        for number, batch in enumerate(batches, 1):
            name = f"{book}:{number}"
            state = imports.get(name) or {}
            if state.get("done"):
                continue
            if not state.get("id"):
                answer = hook.import_contacts(batch["file"], book_id=None if book == "account" else book)
                state = {"id": answer["id"], "file": Path(batch["file"]).name, "rows": batch["rows"]}
                imports[name] = state
                plan.set_step("imports", imports)
                self.log.info("Import %s started for %d contacts (%s)", answer["id"], batch["rows"], name)
            else:
                self.log.info("Reconnecting to import %s of %s", state["id"], name)
            status = self._wait(
                lambda i=state["id"]: hook.import_status(i)["status"],
                IMPORT_PENDING,
                state["id"],
                "import_status_of",
            )
            state["status"] = status
            if status != IMPORT_DONE:
                plan.set_step("imports", imports)
                raise DotdigitalImportError(
                    f"Dotdigital import {state['id']} of {state['file']} ended as {status!r}; nothing "
                    "of this file was added. Check the file in the run folder and the account's "
                    "import limits."
                )
            report = hook.import_report(state["id"])
            state["report"] = report
            faulted = self._faults(hook, plan, book, state["id"], report, batch)
            self._record_batch(plan, book, batch, faulted)
            state["done"] = True
            plan.set_step("imports", imports)

    def _faults(
        self,
        hook: DotdigitalHook,
        plan: SyncPlan,
        book: str,
        import_id: str,
        report: dict[str, Any],
        batch: dict[str, Any],
    ) -> dict[str, tuple[str, str | None]]:
        """Rows the import rejected: ``email -> (status, reason)``, read from ``report-faults``.

        The file's reasons map to Dotdigital contact statuses (:mod:`..pipeline.dotdigital_faults`);
        an unknown reason or header fails the task rather than counting the row as added. With
        resubscribe, members whose reason allows it are resubscribed (reason None once they are).
        """
        ok = ("newContacts", "updatedContacts")
        if not any(int(v or 0) for k, v in report.items() if k not in ok):
            return {}
        try:
            faults = faults_by_email(hook.import_faults(import_id))
        except FaultsFileError as exc:
            raise DotdigitalImportError(
                f"Dotdigital import {import_id} of {batch['file']}: its report-faults file could not be "
                f"read: {exc}. No outcome was recorded for this file, so no rejected contact counts as "
                "added; a retry reads the file again. A new header or reason needs adding to "
                "lytics_provider.pipeline.dotdigital_faults."
            ) from None
        outcomes: dict[str, tuple[str, str | None]] = {}
        wanted: list[str] = []
        for email, fault in faults.items():
            meaning = fault.meaning
            if meaning.duplicate:
                continue  # another row of the same email was imported
            hint = ""
            if meaning.resubscribable and self.options.resubscribes:
                wanted.append(email)
            elif meaning.resubscribable:
                hint = " (enable resubscribe to resubscribe it)"
            text = f"Dotdigital did not add the contact: {fault.reason}: {meaning.explanation}{hint}"
            outcomes[email] = (meaning.status, text)
        if wanted:
            self._resubscribe_faults(hook, plan, book, import_id, batch, sorted(wanted), outcomes)
        return outcomes

    def _resubscribe_faults(
        self,
        hook: DotdigitalHook,
        plan: SyncPlan,
        book: str,
        import_id: str,
        batch: dict[str, Any],
        emails: list[str],
        outcomes: dict[str, tuple[str, str | None]],
    ) -> None:
        """Resubscribe suppressed members of one import, once each across retries.

        The account-wide import (``book == "account"``) resubscribes at account level with the
        member's data fields and adds it to no address book; a book import resubscribes at
        account level, then adds the member (with its data fields) to the book.
        """
        key = f"resubscribed:{import_id}"
        done: dict[str, list[Any]] = plan.step(key) or {}
        payloads = self._payloads(plan, book, batch, set(emails) - set(done))
        try:
            for count, email in enumerate(emails, 1):
                if email not in done:
                    done[email] = list(self._resubscribe_fault(hook, book, email, payloads, outcomes[email]))
                    if count % 50 == 0:
                        plan.set_step(key, done)
                outcomes[email] = (done[email][0], done[email][1])
        finally:
            plan.set_step(key, done)

    def _resubscribe_fault(
        self,
        hook: DotdigitalHook,
        book: str,
        email: str,
        payloads: dict[str, dict[str, str]],
        outcome: tuple[str, str | None],
    ) -> tuple[str, str | None]:
        """Resubscribe one member the import refused; return its new (status, reason)."""
        contact = self._contact(email, payloads.get(email) or {})
        status, reason = outcome
        result = self._resubscribe_contact(hook, email, None, contact)
        if result == "ContactAdded" and book == "account":
            return "Subscribed", None
        if result == "ContactAdded":
            added = str(hook.add_contact_to_address_book(book, contact).get("status") or "")
            if added == "Subscribed":
                return added, None
            return added or status, f"address book answered {added!r} after resubscribe"
        if result == "ContactChallenged":
            return "PendingOptIn", "resubscribe challenge sent; the contact has to confirm"
        return status, f"{reason}; resubscribe answered {result}"

    @staticmethod
    def _payloads(
        plan: SyncPlan, book: str, batch: dict[str, Any], emails: set[str]
    ) -> dict[str, dict[str, str]]:
        """The planned data fields of some members of one import file."""
        found: dict[str, dict[str, str]] = {}
        if emails:
            for work in plan.work_between("add", book, batch["first"], batch["last"]):
                if work.ident in emails:
                    found[work.ident] = work.fields()
        return found

    def _record_batch(
        self, plan: SyncPlan, book: str, batch: dict[str, Any], faulted: dict[str, tuple[str, str | None]]
    ) -> None:
        rows: list[Outcome] = []
        for work in plan.work_between("add", book, batch["first"], batch["last"]):
            status, reason = faulted.get(work.ident) or ("Subscribed", None)
            account_status = status if status != "Rejected" else None
            rows.append((work.ident, book, "add", work.uid, status, account_status, reason))
        plan.record(rows)
