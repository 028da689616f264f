"""Deliver Lytics audiences to Dotdigital address books (Export Contacts, Export Multiple Audiences,
Export Modified Contacts, Remove Contacts).

Each operator runs as the ``deliver`` task after ``scan``: it diffs the run's snapshot against the
last committed one (everyone enters on the first run, on ``full_refresh`` or when the baseline is
gone), plans every send into a run-local SQLite file, then executes the plan:

* adds go through one bulk CSV import per address book and per file (files stay within the size
  limit Dotdigital documents for the import endpoint: 10 MB per address-book import, 50 MB per
  account-wide import), polled to completion;
  the import report and ``report-faults`` CSV are read back so each rejected row lands in the
  rejects file with Dotdigital's reason. With Trigger Join Actions each contact is added on its
  own (one call each), which is what fires the address book's join actions;
* exits are removed in bulk by contact id (the ID Field, else a per-job email -> id map kept fresh
  from the address book listing), or unsubscribed one by one. An exit whose email also enters the
  same address book in this run (a member whose identity key changed, see ``pipeline.identity``)
  is dropped from the plan: the contact stays;
* before anything is sent, the exit guard (``pipeline.exit_guard``) stops a run whose exits are
  more than ``max_exit_fraction`` of the previous audience (and at least ``exit_guard_min_exits``);
  the run param ``allow_mass_exit`` lets one run through, and a dry run reports the verdict;
* with Sync Status, every contact's outcome is written to the ``dotmailer_export_status`` stream.

Planning, checkpoints, tracked removals (exits only of contacts this job added), rejects and the
run report come from the sync engine (``lytics_provider.sync``); this module holds what is
Dotdigital's. Every step is recorded in the plan file, so a retried task reconnects to the bulk
import or bulk removal it already started instead of submitting a second one, and per-contact
steps continue after the last batch they finished. With ``deferrable`` the bulk-job waits run in
the triggerer (``triggers.bulk_job``). The run's snapshot becomes the next baseline only when the
``report`` task commits it, after this task succeeded.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow.sdk import Context, conf

from lytics_provider.hooks.dotdigital import IMPORT_DONE, IMPORT_PENDING, DotdigitalError, DotdigitalHook
from lytics_provider.pipeline.dotdigital_faults import FaultsFileError, faults_by_email
from lytics_provider.pipeline.exit_guard import enforce
from lytics_provider.pipeline.workarea import job_dir
from lytics_provider.sync.act import act_in_batches
from lytics_provider.sync.destination import SyncDestination
from lytics_provider.sync.identifiers import is_email, lookup_field, normalize_email, scalar_text
from lytics_provider.sync.operator import AudienceSyncOperator, SyncRunInputs
from lytics_provider.sync.plan import Outcome, SyncPlan, Work
from lytics_provider.sync.report import SyncReport, write_rejects
from lytics_provider.sync.wait import BulkJobTimeout, wait_for_status
from lytics_provider.triggers.bulk_job import BulkJobTrigger

MAX_IMPORT_BYTES = 50 * 1024 * 1024
REMOVE_CHUNK = 10_000
PER_CONTACT_BATCH = 50
OPT_IN_TYPES = ("Unknown", "Single", "Double", "VerifiedDouble")
EMAIL_TYPES = ("PlainText", "Html")
STATUS_STREAM = "dotmailer_export_status"
REJECT_COLUMNS = (
    ("email", "ident"), ("address_book", "target"), ("action", "action"), ("uid", "uid"),
    ("status", "status"), ("reason", "reason"),
)


class DotdigitalConfigError(ValueError):
    """The job's options do not fit the Dotdigital account (missing address book or data field)."""


class DotdigitalImportError(RuntimeError):
    """A bulk import or bulk removal ended in a failed state."""


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


# -- mapping a Lytics profile to a Dotdigital contact -----------------------------------------
def message_of(exc: DotdigitalError) -> str:
    """The message of a Dotdigital error body (never the request)."""
    body = exc.body
    return str(body.get("message") if isinstance(body, dict) else body or exc.code or "error")


def csv_row_bytes(values: Sequence[str]) -> int:
    """An upper bound of the UTF-8 bytes of one CSV row (every value quoted, quotes doubled, CRLF)."""
    total = 2
    for value in values:
        total += (len(value) if value.isascii() else len(value.encode("utf-8"))) + value.count('"') + 3
    return total


@dataclass
class ExportOptions:
    """What to send and how; see the operators for each option."""

    email_field: str = "email"
    id_field: str = "dm_contact_id"
    map_fields: dict[str, str] = field(default_factory=dict)
    opt_in_type: str = "Unknown"
    email_type: str = "Html"
    trigger_join_actions: bool = False
    resubscribe: bool = False
    resubscribe_with_no_challenge: bool = False
    sync_status: bool = False
    max_file_bytes: int = MAX_IMPORT_BYTES
    poll_interval: float = 15.0
    timeout: float = 6 * 3600.0

    def __post_init__(self) -> None:
        if self.opt_in_type not in OPT_IN_TYPES:
            raise DotdigitalConfigError(
                f"opt_in_type {self.opt_in_type!r} is not one of {', '.join(OPT_IN_TYPES)}"
            )
        if self.email_type not in EMAIL_TYPES:
            raise DotdigitalConfigError(
                f"email_type {self.email_type!r} is not one of {', '.join(EMAIL_TYPES)}"
            )

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys(self.map_fields.values()))

    @property
    def resubscribes(self) -> bool:
        return self.resubscribe or self.resubscribe_with_no_challenge


class DotdigitalDestination(SyncDestination):
    """How the sync engine plans for Dotdigital: members by email, targets are address books."""

    tracked_exit_actions = ("remove", "unsubscribe")

    def __init__(self, op: _DotdigitalDeliveryOperator, books: dict[str, str]) -> None:
        self.op = op
        self.books = books
        self.enter_kinds = op.enter_kinds
        self.dropped: Counter[str] = Counter()

    def identify(self, record: dict[str, Any]) -> tuple[str, str | None]:
        opts = self.op.options
        ref = scalar_text(lookup_field(record, opts.id_field)).strip() or None
        return normalize_email(lookup_field(record, opts.email_field)), ref

    def invalid_reason(self, ident: str, record: dict[str, Any]) -> str | None:
        if is_email(ident):
            return None
        field_name = self.op.options.email_field
        return f"{field_name!r} is not a valid email address" if ident else f"no email in {field_name!r}"

    def targets(self, record: dict[str, Any]) -> list[str]:
        return self.op.targets(record, self.books)

    def payload(self, record: dict[str, Any]) -> dict[str, str]:
        fields: dict[str, str] = {}
        for source, target in self.op.options.map_fields.items():
            value = lookup_field(record, source)
            if isinstance(value, (list, dict, tuple, set)):
                if value:
                    self.dropped[source] += 1
                continue
            fields[target] = scalar_text(value)
        return fields

    def enter_action(self) -> str:
        return self.op.enter_action()

    def exit_action(self) -> str:
        return self.op.exit_action()


class _DotdigitalDeliveryOperator(AudienceSyncOperator):
    """Shared Dotdigital delivery: bulk import, bulk removal, per-contact calls, status sync.

    Planning, the exit guard, checkpoints, tracked removals and rejects come from ``sync``.

    :param dotdigital_conn_id: the Dotdigital connection (API user).
    :param lytics_conn_id: the Lytics connection (status sync).
    :param email_field: Lytics field with the email.
    :param id_field: Lytics field with the Dotdigital contact id (bulk removal by id).
    :param map_fields: Lytics field -> Dotdigital data field; arrays and maps are dropped.
    :param opt_in_type: Opt-in Type of added contacts.
    :param email_type: Email Type of added contacts.
    :param trigger_join_actions: add contacts one call each so join actions fire.
    :param resubscribe: resubscribe unsubscribed / suppressed contacts (with a challenge).
    :param resubscribe_with_no_challenge: resubscribe without a confirmation email.
    :param sync_status: write each contact's outcome to ``dotmailer_export_status``.
    :param max_file_bytes: upper bound of one import file (below the endpoint's limit).
    :param poll_interval: seconds between bulk job status polls.
    :param timeout: seconds to wait for one bulk job.
    :param deferrable: wait for bulk jobs in the triggerer (``triggers.bulk_job``), freeing the
        worker slot; default from ``[operators] default_deferrable``.
    """

    ui_color = "#f4b183"
    enter_kinds: tuple[str, ...] = ("enter", "change")
    sleep = staticmethod(time.sleep)
    config_error = DotdigitalConfigError

    def __init__(
        self,
        *,
        dotdigital_conn_id: str = DotdigitalHook.default_conn_name,
        lytics_conn_id: str = "lytics_default",
        email_field: str = "email",
        id_field: str = "dm_contact_id",
        map_fields: dict[str, str] | None = None,
        opt_in_type: str = "Unknown",
        email_type: str = "Html",
        trigger_join_actions: bool = False,
        resubscribe: bool = False,
        resubscribe_with_no_challenge: bool = False,
        sync_status: bool = False,
        max_file_bytes: int = MAX_IMPORT_BYTES,
        poll_interval: float = 15.0,
        timeout: float = 6 * 3600.0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dotdigital_conn_id = dotdigital_conn_id
        self.lytics_conn_id = lytics_conn_id
        self.deferrable = deferrable
        self.options = ExportOptions(
            email_field=email_field,
            id_field=id_field,
            map_fields=dict(map_fields or {}),
            opt_in_type=opt_in_type,
            email_type=email_type,
            trigger_join_actions=trigger_join_actions,
            resubscribe=resubscribe,
            resubscribe_with_no_challenge=resubscribe_with_no_challenge,
            sync_status=sync_status,
            max_file_bytes=max_file_bytes,
            poll_interval=poll_interval,
            timeout=timeout,
        )
        self._resumed: dict[str, str] = {}

    # -- hooks for subclasses -------------------------------------------------------------------
    def resolve_books(self, hook: DotdigitalHook, audience: dict[str, Any], dry_run: bool) -> dict[str, str]:
        """``book id -> name`` of the address books this run writes to."""
        raise NotImplementedError

    def targets(self, record: dict[str, Any], books: dict[str, str]) -> list[str]:
        """Address books a member belongs in (all resolved books by default)."""
        return list(books)

    def enter_action(self) -> str:
        return "add"

    def exit_action(self) -> str:
        return "ignore"

    # -- execution ------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        return self._deliver(context)

    def _deliver(self, context: Context) -> dict[str, Any]:
        inputs = self.sync_inputs(context)
        folder = inputs.folder
        hook = DotdigitalHook(self.dotdigital_conn_id)
        account = hook.account_info()
        self.account_id = str(account.get("id"))
        books = self.resolve_books(hook, inputs.audience, inputs.dry_run)
        self._check_data_fields(hook)
        dest = DotdigitalDestination(self, books)
        plan = self.open_plan(inputs, dest, "dotdigital_plan")
        try:
            verdict = self.guard(plan, dest, inputs)
            report = SyncReport(
                planned=plan.step("planned"),
                dry_run=inputs.dry_run,
                exit_guard=verdict.as_report(),
                destination={"account_id": self.account_id, "address_books": books},
            )
            if inputs.dry_run:
                if verdict.blocked:
                    self.log.warning("Dry run: %s", verdict.message(self.job_id))
                report.destination["dotdigital_calls"] = hook.calls
                self.log.info("Dry run: nothing sent. Plan: %s", report.as_dict())
                return report.as_dict()
            enforce(verdict, self.job_id)
            for book in plan.targets("add"):
                self._adds(hook, plan, book, folder)
            for kind in ("remove", "unsubscribe", "resubscribe"):
                for book in plan.targets(kind):
                    getattr(self, f"_{kind}s")(hook, plan, book)
            report.rejected = write_rejects(plan, folder / "rejects.csv", REJECT_COLUMNS)
            self.record_ledger(plan, dest, inputs)
            if self.options.sync_status and plan.step("status_synced") is None:
                plan.set_step("status_synced", self._sync_status(plan))
            report.outcomes = plan.counts()
            report.rejects_file = str(folder / "rejects.csv")
            report.destination.update(
                imports=plan.step("imports") or {},
                status_sync=plan.step("status_synced"),
                dotdigital_calls=hook.calls,
            )
        finally:
            plan.close()
        if report.rejected:
            self.log.warning("%d contacts were rejected; reasons in %s", report.rejected, report.rejects_file)
        self.log.info("Delivered to Dotdigital: %s", report.as_dict())
        return report.as_dict()

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after a deferred bulk-job wait: the plan's steps carry on from where it stopped."""
        if event.get("error"):
            raise DotdigitalImportError(
                f"Checking Dotdigital job {event.get('job_id')} failed: {event['error']}; "
                "a retry reconnects to it"
            )
        if event.get("timed_out"):
            raise DotdigitalImportError(
                f"Dotdigital job {event.get('job_id')} still {event.get('status')!r} after "
                f"{self.options.timeout:.0f}s; a retry reconnects to it"
            )
        self._resumed = {str(event["job_id"]): str(event["status"])}
        return self._deliver(context)

    def planned_extra(self, plan: SyncPlan) -> dict[str, Any]:
        dropped = getattr(self, "_dropped", None)
        return {"dropped_fields": dict(dropped or {})}

    def open_plan(self, inputs: SyncRunInputs, dest: SyncDestination, name: str) -> SyncPlan:
        assert isinstance(dest, DotdigitalDestination)
        self._dropped = dest.dropped
        plan = super().open_plan(inputs, dest, name)
        if dest.dropped:
            self.log.warning(
                "Dropped non-scalar values (arrays and maps are not supported by Dotdigital): %s",
                dict(dest.dropped),
            )
        return plan

    def _check_data_fields(self, hook: DotdigitalHook) -> None:
        wanted = self.options.columns
        if not wanted:
            return
        known = {str(f.get("name", "")).upper() for f in hook.list_data_fields()}
        missing = [name for name in wanted if name.upper() not in known]
        if missing:
            raise DotdigitalConfigError(
                f"map_fields of job {self.job_id!r} names data fields that do not exist in Dotdigital "
                f"account {self.account_id}: {', '.join(missing)}. Create them in Dotdigital "
                f"(Contacts > Data fields) or remove them from map_fields. "
                f"Known fields: {', '.join(sorted(known))}."
            )

    # -- adds -----------------------------------------------------------------------------------
    def _adds(self, hook: DotdigitalHook, plan: SyncPlan, book: str, folder: Path) -> None:
        if self.options.trigger_join_actions and book != "account":
            self._add_one_by_one(hook, plan, book)
        else:
            self._add_in_bulk(hook, plan, book, folder)

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

    def _contact(self, email: str, fields: dict[str, str]) -> dict[str, Any]:
        contact: dict[str, Any] = {
            "email": email,
            "optInType": self.options.opt_in_type,
            "emailType": self.options.email_type,
        }
        if fields:
            contact["dataFields"] = [{"key": k, "value": v} for k, v in fields.items() if v != ""]
        return contact

    def _resubscribe_contact(
        self, hook: DotdigitalHook, email: str, book: str | None, contact: dict[str, Any] | None = None
    ) -> str:
        answer = hook.resubscribe(
            contact or {"email": email}, book_id=book, no_challenge=self.options.resubscribe_with_no_challenge
        )
        return str(answer.get("status") or "")

    def _add_one_by_one(self, hook: DotdigitalHook, plan: SyncPlan, book: str) -> None:
        def add(rows: list[Work]) -> Iterator[Outcome]:
            for work in rows:
                status, reason = self._add_contact(hook, book, self._contact(work.ident, work.fields()))
                account_status = status if status != "Rejected" else None
                yield (work.ident, book, "add", work.uid, status, account_status, reason)

        act_in_batches(plan, "add", book, PER_CONTACT_BATCH, lambda rows: list(add(rows)))

    def _add_contact(
        self, hook: DotdigitalHook, book: str, contact: dict[str, Any]
    ) -> tuple[str, str | None]:
        """Add one contact (resubscribing it when asked); return (status, reject reason)."""
        try:
            answer = hook.add_contact_to_address_book(book, contact)
        except DotdigitalError as exc:
            if exc.code != "ERROR_CONTACT_SUPPRESSED":
                if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
                    return "Rejected", f"Dotdigital refused the contact: {message_of(exc)}"
                raise
            if not self.options.resubscribes:
                return (
                    "Suppressed",
                    "contact is suppressed in Dotdigital (enable resubscribe to resubscribe it)",
                )
            result = self._resubscribe_contact(hook, contact["email"], None)
            if result != "ContactAdded":
                return "Suppressed", f"resubscribe answered {result}"
            answer = hook.add_contact_to_address_book(book, contact)
        status = str(answer.get("status") or "Subscribed")
        if status == "Unsubscribed":
            if not self.options.resubscribes:
                return (
                    status,
                    "contact unsubscribed from this address book (enable resubscribe to resubscribe it)",
                )
            result = self._resubscribe_contact(hook, contact["email"], book)
            if result == "ContactAdded":
                return "Subscribed", None
            return status, f"address book resubscribe answered {result}"
        return status, None

    # -- exits ----------------------------------------------------------------------------------
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

    def _per_contact(self, plan: SyncPlan, kind: str, book: str, call: Any) -> None:
        act_in_batches(plan, kind, book, PER_CONTACT_BATCH, lambda rows: self._each(rows, kind, book, call))

    @staticmethod
    def _each(rows: list[Work], kind: str, book: str, call: Any) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for work in rows:
            status, reason = call(work.ident)
            outcomes.append((work.ident, book, kind, work.uid, status, None, reason))
        return outcomes

    def _unsubscribes(self, hook: DotdigitalHook, plan: SyncPlan, book: str) -> None:
        target = None if book == "account" else book

        def unsubscribe(email: str) -> tuple[str, str | None]:
            try:
                hook.unsubscribe(email, target)
            except DotdigitalError as exc:
                if exc.code == "ERROR_CONTACT_NOT_FOUND":
                    return "NotInDotdigital", None
                raise
            return "Unsubscribed", None

        self._per_contact(plan, "unsubscribe", book, unsubscribe)

    def _resubscribes(self, hook: DotdigitalHook, plan: SyncPlan, book: str) -> None:
        target = None if book == "account" else book

        def resubscribe(email: str) -> tuple[str, str | None]:
            result = self._resubscribe_contact(hook, email, target)
            if result == "ContactAdded":
                return "Subscribed", None
            if result == "ContactChallenged":
                return "PendingOptIn", None
            return "Suppressed", f"resubscribe answered {result}"

        self._per_contact(plan, "resubscribe", book, resubscribe)

    # -- waiting, rejects, status ---------------------------------------------------------------
    def _wait(self, poll: Any, pending: str, job_id: str, status_of: str) -> str:
        """Wait for a bulk job: resume with a deferred wait's status, defer, or poll in the worker."""
        if job_id in self._resumed:
            return self._resumed.pop(job_id)
        what = f"Dotdigital job {job_id}"
        if self.deferrable:
            status = poll()
            if status != pending:
                return status
            self.log.info("%s is %s; deferring the wait to the triggerer", what, status)
            self.defer(
                trigger=BulkJobTrigger(
                    status_callable=f"lytics_provider.hooks.dotdigital.{status_of}",
                    kwargs={"dotdigital_conn_id": self.dotdigital_conn_id, "job_id": job_id},
                    job_id=job_id,
                    pending=[pending],
                    poll_interval=self.options.poll_interval,
                    timeout=self.options.timeout,
                ),
                method_name="execute_complete",
            )
        try:
            return wait_for_status(
                poll, (pending,), self.options.poll_interval, self.options.timeout, what, self.sleep
            )
        except BulkJobTimeout as exc:
            raise DotdigitalImportError(str(exc)) from None

    def _status_records(self, plan: SyncPlan) -> Iterator[dict[str, Any]]:
        stamp = int(time.time() * 1000)
        for email, book, _, _, status, account_status, _ in plan.iter_outcomes():
            if not is_email(email):
                continue
            record: dict[str, Any] = {"email": email, "dm_addressbook_status_ts": stamp}
            if book != "account":
                record["dm_addressbook_status"] = {f"{self.account_id}_{book}": status.lower()}
            if account_status:
                record["dm_account_status"] = {self.account_id: account_status.lower()}
            yield record

    def _sync_status(self, plan: SyncPlan) -> dict[str, int]:
        from lytics_provider.hooks.lytics import LyticsHook

        result = LyticsHook(self.lytics_conn_id).collect_json(STATUS_STREAM, self._status_records(plan))
        self.log.info("Wrote %d status records to %s", result.accepted, STATUS_STREAM)
        return {"accepted": result.accepted, "rejected": result.rejected, "requests": result.requests}


def _named_books(
    hook: DotdigitalHook, names: Sequence[str], create: bool, dry_run: bool, job_id: str, account_id: str
) -> dict[str, str]:
    """Resolve address books by id or name (case-insensitive); create missing ones when allowed."""
    existing = hook.list_address_books()
    by_id = {str(b["id"]): str(b["name"]) for b in existing}
    by_name = {str(b["name"]).lower(): str(b["id"]) for b in existing}
    resolved: dict[str, str] = {}
    for name in names:
        if name in by_id:
            resolved[name] = by_id[name]
        elif name.lower() in by_name:
            resolved[by_name[name.lower()]] = name
        elif create and dry_run:
            resolved[f"new:{name}"] = name
        elif create:
            book = hook.create_address_book(name)
            resolved[str(book["id"])] = str(book["name"])
        else:
            raise DotdigitalConfigError(
                f"Address book {name!r} does not exist in Dotdigital account {account_id} (job {job_id!r}). "
                "Set create_address_book: true to create it, or name an existing address book in "
                "address_book_name (audiences[].address_book for Export Multiple Audiences)."
            )
    return resolved


class DotdigitalExportContactsOperator(_DotdigitalDeliveryOperator):
    """Export Contacts / Export Multiple Audiences: keep address books in step with an audience.

    Entering members are added (one bulk import per book, or one call each with
    ``trigger_join_actions``); on exit they are removed (default), unsubscribed or ignored. With
    ``address_book_status_field`` each member's own map (``"{account}_{book}": "syncing"``) names
    its books and ``address_book_name`` / ``create_address_book`` are ignored.
    """

    template_fields: Sequence[str] = ("address_book_name",)

    def __init__(
        self,
        *,
        address_book_name: str | None = None,
        create_address_book: bool = False,
        address_book_status_field: str | None = None,
        on_exit: str = "remove",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_exit not in ("remove", "unsubscribe", "ignore"):
            raise DotdigitalConfigError(f"on_exit {on_exit!r} is not one of remove, unsubscribe, ignore")
        self.address_book_name = address_book_name
        self.create_address_book = create_address_book
        self.address_book_status_field = address_book_status_field
        self.on_exit = on_exit

    def exit_action(self) -> str:
        return self.on_exit

    def resolve_books(self, hook: DotdigitalHook, audience: dict[str, Any], dry_run: bool) -> dict[str, str]:
        if self.address_book_status_field:
            return {str(b["id"]): str(b["name"]) for b in hook.list_address_books()}
        default = f"Lytics {audience.get('name') or audience.get('slug') or ''}".strip()
        name = self.address_book_name or default
        return _named_books(hook, [name], self.create_address_book, dry_run, self.job_id, self.account_id)

    def targets(self, record: dict[str, Any], books: dict[str, str]) -> list[str]:
        if not self.address_book_status_field:
            return list(books)
        status = lookup_field(record, self.address_book_status_field)
        if not isinstance(status, dict):
            return []
        found = []
        for key, value in status.items():
            account, _, book = str(key).partition("_")
            if account == self.account_id and str(value).lower() == "syncing" and book in books:
                found.append(book)
        return sorted(found)


class DotdigitalExportModifiedContactsOperator(_DotdigitalDeliveryOperator):
    """Export Modified Contacts: keep contacts' data fields up to date (account-wide bulk import)."""

    def resolve_books(self, hook: DotdigitalHook, audience: dict[str, Any], dry_run: bool) -> dict[str, str]:
        if not self.options.map_fields:
            raise DotdigitalConfigError(
                f"job {self.job_id!r}: Export Modified Contacts needs map_fields (Lytics field -> data field)"
            )
        return {"account": "All contacts"}


class DotdigitalRemoveContactsOperator(_DotdigitalDeliveryOperator):
    """Remove Contacts: remove or unsubscribe members who enter; optionally resubscribe on exit.

    Without ``address_book_name`` the contacts are unsubscribed from the whole account.
    """

    enter_kinds = ("enter",)
    template_fields: Sequence[str] = ("address_book_name",)

    def __init__(
        self,
        *,
        address_book_name: str | None = None,
        on_enter: str = "unsubscribe",
        resubscribe_on_exit: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_enter not in ("remove", "unsubscribe"):
            raise DotdigitalConfigError(f"on_enter {on_enter!r} is not one of remove, unsubscribe")
        if on_enter == "remove" and not address_book_name:
            raise DotdigitalConfigError(
                "on_enter: remove needs address_book_name (removal is from one address book)"
            )
        self.address_book_name = address_book_name
        self.on_enter = on_enter
        self.resubscribe_on_exit = resubscribe_on_exit

    def enter_action(self) -> str:
        return self.on_enter

    def exit_action(self) -> str:
        return "resubscribe" if self.resubscribe_on_exit else "ignore"

    def resolve_books(self, hook: DotdigitalHook, audience: dict[str, Any], dry_run: bool) -> dict[str, str]:
        if not self.address_book_name:
            return {"account": "All contacts"}
        return _named_books(hook, [self.address_book_name], False, dry_run, self.job_id, self.account_id)
