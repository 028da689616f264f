"""Export a scanned Lytics audience to an iContact list ("Export Audience to List").

The ``deliver`` task of the export DAG (``scan`` → ``deliver`` → ``report``). It streams the
members to send from the scan snapshot, in batches of ``batch_size``, and per batch

1. takes each member's ``contactId`` from the iContact Distinct ID (``ic_contact_id``), the
   seed's one exported field;
2. for members without one but with an email: finds the contact by email in the folder (one
   paged read of the folder's contacts, indexed on disk, done only when needed) or else creates
   it, together with the batch's other new contacts, in one collection ``POST …/contacts``
   (email, first and last name). Existing contacts are never re-posted, because iContact blanks
   the fields an update does not send;
3. subscribes the batch with one collection ``POST …/subscriptions`` (status ``normal``).

What is sent: every member on the first run (or with ``full_refresh``), afterwards only the
members who entered the audience since the last committed run (Keep Updated sends enters).
Exits: nothing is done. The documented job only subscribes, iContact has no way to delete a
subscription, and unsubscribing would opt the contact out of the list for good.
Contacts who unsubscribed from the list are never resubscribed: they are skipped and counted.
Members with neither an iContact id nor a valid email, and contacts iContact refuses, go to
``deliver_rejects.jsonl`` with the reason. Progress is saved after every acknowledged batch, so
a retried task continues with the next batch. A dry run plans and reports; it writes nothing
to iContact. Planning, checkpoints and rejects come from the sync engine (``lytics_provider.sync``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from airflow.sdk import Context

from lytics_provider.hooks.icontact import Folder, IContactHook
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.pipeline.icontact_mapping import lql_email
from lytics_provider.pipeline.progress import Progress
from lytics_provider.sync.act import act_in_batches
from lytics_provider.sync.destination import SyncDestination
from lytics_provider.sync.operator import AudienceSyncOperator
from lytics_provider.sync.plan import Outcome, SyncPlan, Work
from lytics_provider.sync.report import SyncReport, write_rejects

DEFAULT_BATCH_SIZE = 500
EXPORT_FIELDS = ("ic_contact_id", "email", "first_name", "last_name")
REJECT_COLUMNS = (
    ("uid", "ident"),
    ("list", "target"),
    ("action", "action"),
    ("status", "status"),
    ("reason", "reason"),
)
SUBSCRIBED, SKIPPED, DUPLICATE, REJECTED = "subscribed", "skipped_unsubscribed", "duplicate", "rejected"
CREATED, FOUND_BY_EMAIL = "created", "found_by_email"


@dataclass
class DeliveryCounts:
    """What the export did (or, in a dry run, would do)."""

    batches: int = 0
    members: int = 0
    subscribed: int = 0
    contacts_created: int = 0
    contacts_found_by_email: int = 0
    skipped_unsubscribed: int = 0
    rejected: int = 0

    @classmethod
    def from_plan(cls, plan: SyncPlan, batches: int) -> DeliveryCounts:
        return cls(
            batches=batches,
            members=plan.count_outcomes("add"),
            subscribed=plan.count_outcomes("add", SUBSCRIBED),
            contacts_created=plan.count_outcomes("add", detail=CREATED),
            contacts_found_by_email=plan.count_outcomes("add", detail=FOUND_BY_EMAIL),
            skipped_unsubscribed=plan.count_outcomes("add", SKIPPED),
            rejected=plan.count_outcomes("add", REJECTED),
        )


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of up to ``size`` items."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class IContactListDestination(SyncDestination):
    """Members (by snapshot key) who enter are subscribed to one list; exits send nothing."""

    enter_kinds = ("enter",)
    tracked_exit_actions = ()

    def __init__(self, list_id: str) -> None:
        self.list_id = list_id

    def identify(self, record: dict[str, Any]) -> tuple[str, str | None]:
        return str(record.get("_uid") or ""), str(record.get("ic_contact_id") or "").strip() or None

    def targets(self, record: dict[str, Any]) -> list[str]:
        return [self.list_id]

    def payload(self, record: dict[str, Any]) -> dict[str, Any]:
        return {name: record.get(name) for name in ("email", "first_name", "last_name")}


class _Index:
    """On-disk lookups built from one paged iContact read: emails → contact ids, unsubscribed ids."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.executescript(
            "CREATE TABLE IF NOT EXISTS emails (email TEXT PRIMARY KEY, id TEXT);"
            "CREATE TABLE IF NOT EXISTS unsub (id TEXT PRIMARY KEY);"
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY);"
        )

    def built(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM meta WHERE key = ?", (name,)).fetchone() is not None

    def fill(self, name: str, table: str, rows: Iterable[tuple[str, ...]]) -> None:
        self.db.execute("BEGIN")
        self.db.execute(f"DELETE FROM {table}")
        for chunk in batched(rows, 1000):
            marks = ", ".join("?" * len(chunk[0]))
            self.db.executemany(f"INSERT OR IGNORE INTO {table} VALUES ({marks})", chunk)
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?)", (name,))
        self.db.execute("COMMIT")

    def contact_id(self, email: str) -> str | None:
        row = self.db.execute("SELECT id FROM emails WHERE email = ?", (email,)).fetchone()
        return row[0] if row else None

    def add_email(self, email: str, contact_id: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO emails VALUES (?, ?)", (email, contact_id))

    def unsubscribed(self, contact_ids: list[str]) -> set[str]:
        marks = ", ".join("?" * len(contact_ids))
        rows = self.db.execute(f"SELECT id FROM unsub WHERE id IN ({marks})", contact_ids).fetchall()
        return {r[0] for r in rows}

    def close(self) -> None:
        self.db.close()


class LyticsToIContactListOperator(AudienceSyncOperator):
    """Subscribe the audience members to an iContact list; see the module docstring.

    :param job_id: the job's id.
    :param destination_list: the iContact list (id or name).
    :param icontact_conn_id: the iContact connection.
    :param account_id: the iContact account (default: the connection's).
    :param client_folder_id: the client folder (default: the connection's).
    :param batch_size: members per subscription call (1 to 5000).
    :param scan_task_id: the scan task.
    :param create_missing_contacts: create contacts for members with an email but no iContact id.
    :param page_size: page size of the folder listings.
    """

    batch_limit = 5000
    template_fields = ("destination_list",)

    def __init__(
        self,
        *,
        destination_list: str,
        icontact_conn_id: str = IContactHook.default_conn_name,
        destination_account: str | None = None,
        destination_client_folder: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        create_missing_contacts: bool = True,
        page_size: int = 1000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        self.check_batch_size(batch_size)

    def execute(self, context: Context) -> dict[str, Any]:
        inputs = self.sync_inputs(context)
        hook = IContactHook(self.icontact_conn_id, page_size=self.page_size)
        folder = hook.resolve_folder(self.destination_account, self.destination_client_folder)
        target = hook.resolve_list(folder, self.destination_list)
        list_id = str(target["listId"])
        self.log.info(
            "Exporting %s to iContact list %s (%s) in account %s, folder %s; %s",
            inputs.audience.get("slug"),
            list_id,
            target.get("name"),
            folder.account_id,
            folder.client_folder_id,
            "members who entered since the last run" if inputs.previous else "every member",
        )
        rejects_path = inputs.folder / "deliver_rejects.jsonl"
        progress = Progress(self.log, "members exported", inputs.members)
        dest = IContactListDestination(list_id)
        with (
            closing(self.open_plan(inputs, dest, "deliver_plan")) as plan,
            closing(_Index(inputs.folder / "icontact_index.db")) as index,
        ):
            self._load_unsubscribed(hook, folder, list_id, index)

            def send(rows: list[Work]) -> list[Outcome]:
                outcomes = self._deliver(hook, folder, list_id, rows, index, inputs.dry_run)
                progress.advance(len(rows))
                return outcomes

            done = act_in_batches(plan, "add", list_id, self.batch_size, send)
            counts = DeliveryCounts.from_plan(plan, done.batches)
            write_rejects(plan, rejects_path, REJECT_COLUMNS)
            report = SyncReport(
                planned=plan.step("planned"),
                dry_run=inputs.dry_run,
                outcomes=plan.counts(),
                rejected=counts.rejected,
                rejects_file=str(rejects_path) if counts.rejected else None,
                destination={
                    "list": {"id": list_id, "name": target.get("name")},
                    "account_id": folder.account_id,
                    "client_folder_id": folder.client_folder_id,
                    "mode": "enters" if inputs.previous else "all",
                    **asdict(counts),
                    "rejects_file": str(rejects_path) if counts.rejected else None,
                    "icontact_calls": hook.calls,
                },
            )
        progress.finish()
        self.log.info("iContact export: %s", report.as_dict())
        return report.as_dict()

    # -- steps ---------------------------------------------------------------------------------
    def _load_unsubscribed(self, hook: IContactHook, folder: Folder, list_id: str, index: _Index) -> None:
        if not index.built("unsub"):
            rows = hook.iter_subscriptions(folder, listId=list_id, status="unsubscribed")
            index.fill("unsub", "unsub", ((str(s["contactId"]),) for s in rows))

    def _load_emails(self, hook: IContactHook, folder: Folder, index: _Index) -> None:
        if not index.built("emails"):
            self.log.info("Members without an iContact id: indexing the folder's contacts by email")
            rows = hook.iter_contacts(folder, status="total")
            index.fill(
                "emails",
                "emails",
                ((e, str(c["contactId"])) for c in rows if (e := lql_email(c.get("email")))),
            )

    def _deliver(
        self,
        hook: IContactHook,
        folder: Folder,
        list_id: str,
        batch: list[Work],
        index: _Index,
        dry_run: bool,
    ) -> list[Outcome]:
        """Subscribe one batch; return one outcome per member (status, detail, reason)."""
        found: dict[str, tuple[str, str | None, str | None]] = {}  # uid -> status, detail, reason
        detail: dict[str, str] = {}

        def reject(work: Work, reason: str) -> None:
            found[work.uid] = (REJECTED, detail.get(work.uid), reason)

        wanted: dict[str, Work] = {}
        to_create: dict[str, Work] = {}
        for work in batch:
            if work.ref:
                wanted.setdefault(work.ref, work)
                continue
            email = lql_email(work.fields().get("email"))
            if email is None or not self.create_missing_contacts:
                reject(work, "no iContact Distinct ID (ic_contact_id) and no valid email")
                continue
            self._load_emails(hook, folder, index)
            known = index.contact_id(email)
            if known:
                detail[work.uid] = FOUND_BY_EMAIL
                wanted.setdefault(known, work)
            else:
                to_create.setdefault(email, work)
        if to_create and dry_run:
            for work in to_create.values():
                found[work.uid] = (SUBSCRIBED, CREATED, None)
        elif to_create:
            self._create(hook, folder, to_create, index, wanted, detail, reject)
        skipped = index.unsubscribed(list(wanted)) if wanted else set()
        ids = [cid for cid in wanted if cid not in skipped]
        for cid in skipped:
            found[wanted[cid].uid] = (SKIPPED, detail.get(wanted[cid].uid), None)
        if dry_run or not ids:
            for cid in ids:
                found[wanted[cid].uid] = (SUBSCRIBED, detail.get(wanted[cid].uid), None)
        else:
            result = hook.subscribe(folder, list_id, ids)
            done = {str(s.get("contactId")) for s in result.items}
            for cid in ids:
                work = wanted[cid]
                if cid in done:
                    found[work.uid] = (SUBSCRIBED, detail.get(work.uid), None)
                    continue
                reason = next((w for w in result.warnings if cid in w), None) or "; ".join(result.warnings)
                reject(work, f"iContact did not subscribe contact {cid}: {reason or 'no reason given'}")
        outcomes: list[Outcome] = []
        for work in batch:
            status, extra, reason = found.get(work.uid) or (DUPLICATE, detail.get(work.uid), None)
            outcomes.append((work.ident, list_id, "add", work.uid, status, extra, reason))
        return outcomes

    def _create(
        self,
        hook: IContactHook,
        folder: Folder,
        to_create: dict[str, Work],
        index: _Index,
        wanted: dict[str, Work],
        detail: dict[str, str],
        reject: Any,
    ) -> None:
        bodies = []
        for email, work in to_create.items():
            body = {"email": email}
            fields = work.fields()
            for source, target in (("first_name", "firstName"), ("last_name", "lastName")):
                if fields.get(source):
                    body[target] = str(fields[source])
            bodies.append(body)
        created = hook.upsert_contacts(folder, bodies)
        for contact in created.items:
            email = lql_email(contact.get("email"))
            if email in to_create and contact.get("contactId"):
                index.add_email(email, str(contact["contactId"]))
                work = to_create.pop(email)
                detail[work.uid] = CREATED
                wanted.setdefault(str(contact["contactId"]), work)
        for work in to_create.values():
            reason = "; ".join(created.warnings) or "no reason given"
            reject(work, f"iContact did not create the contact: {reason[:300]}")
