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
to iContact.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator, Context

from lytics_provider.hooks.icontact import Folder, IContactHook
from lytics_provider.operators.lytics import as_bool
from lytics_provider.pipeline.icontact_mapping import lql_email
from lytics_provider.pipeline.progress import Progress
from lytics_provider.pipeline.snapshot import iter_changes
from lytics_provider.pipeline.state_store import baseline_snapshot
from lytics_provider.pipeline.workarea import atomic_write_text, run_dir

DEFAULT_BATCH_SIZE = 500
EXPORT_FIELDS = ("ic_contact_id", "email", "first_name", "last_name")


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


@dataclass
class _Checkpoint:
    batches_done: int = 0
    counts: DeliveryCounts = field(default_factory=DeliveryCounts)

    @classmethod
    def load(cls, path: Path) -> _Checkpoint:
        if not path.exists():
            return cls()
        doc = json.loads(path.read_text(encoding="utf-8"))
        return cls(int(doc["batches_done"]), DeliveryCounts(**doc["counts"]))

    def save(self, path: Path) -> None:
        atomic_write_text(
            path, json.dumps({"batches_done": self.batches_done, "counts": asdict(self.counts)})
        )


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of up to ``size`` items."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


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


class LyticsToIContactListOperator(BaseOperator):
    """Subscribe the audience members to an iContact list; see the module docstring."""

    template_fields = ("destination_list",)

    def __init__(
        self,
        *,
        job_id: str,
        destination_list: str,
        icontact_conn_id: str = IContactHook.default_conn_name,
        destination_account: str | None = None,
        destination_client_folder: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        scan_task_id: str = "scan",
        create_missing_contacts: bool = True,
        page_size: int = 1000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 1 <= batch_size <= 5000:
            raise ValueError("batch_size must be between 1 and 5000")
        self.job_id = job_id
        self.destination_list = destination_list
        self.icontact_conn_id = icontact_conn_id
        self.destination_account = destination_account
        self.destination_client_folder = destination_client_folder
        self.batch_size = batch_size
        self.scan_task_id = scan_task_id
        self.create_missing_contacts = create_missing_contacts
        self.page_size = page_size

    def execute(self, context: Context) -> dict[str, Any]:
        scan = context["ti"].xcom_pull(task_ids=self.scan_task_id) or {}
        if not scan.get("snapshot"):
            raise ValueError(f"task {self.scan_task_id!r} returned no snapshot; run the scan first")
        params = context.get("params") or {}
        dry_run = as_bool(params.get("dry_run"))
        previous = None if as_bool(params.get("full_refresh")) else baseline_snapshot(self.job_id)
        workdir = run_dir(self.job_id, context["run_id"])
        checkpoint_path = workdir / ("deliver_dry_run.json" if dry_run else "deliver.json")
        checkpoint = _Checkpoint.load(checkpoint_path)
        hook = IContactHook(self.icontact_conn_id, page_size=self.page_size)
        folder = hook.resolve_folder(self.destination_account, self.destination_client_folder)
        target = hook.resolve_list(folder, self.destination_list)
        list_id = str(target["listId"])
        self.log.info(
            "Exporting %s to iContact list %s (%s) in account %s, folder %s; %s",
            (scan.get("audience") or {}).get("slug"),
            list_id,
            target.get("name"),
            folder.account_id,
            folder.client_folder_id,
            "members who entered since the last run" if previous else "every member",
        )
        rejects_path = workdir / "deliver_rejects.jsonl"
        progress = Progress(self.log, "members exported", scan.get("members"))
        with (
            closing(_Index(workdir / "icontact_index.db")) as index,
            rejects_path.open("a" if checkpoint.batches_done else "w", encoding="utf-8") as rejects,
        ):
            self._load_unsubscribed(hook, folder, list_id, index)
            members = (c.record for c in iter_changes(scan["snapshot"], previous, kinds=("enter",)))
            for number, batch in enumerate(batched(members, self.batch_size)):
                if number < checkpoint.batches_done:
                    continue
                self._deliver(hook, folder, list_id, batch, index, rejects, checkpoint.counts, dry_run)
                checkpoint.batches_done = number + 1
                checkpoint.counts.batches += 1
                checkpoint.counts.members += len(batch)
                rejects.flush()
                checkpoint.save(checkpoint_path)
                progress.advance(len(batch))
        progress.finish()
        report = {
            "list": {"id": list_id, "name": target.get("name")},
            "account_id": folder.account_id,
            "client_folder_id": folder.client_folder_id,
            "mode": "enters" if previous else "all",
            **asdict(checkpoint.counts),
            "rejects_file": str(rejects_path) if checkpoint.counts.rejected else None,
            "icontact_calls": hook.calls,
            "dry_run": dry_run,
        }
        self.log.info("iContact export: %s", report)
        return report

    # -- helpers -------------------------------------------------------------------------------
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
        batch: list[dict[str, Any]],
        index: _Index,
        rejects: Any,
        counts: DeliveryCounts,
        dry_run: bool,
    ) -> None:
        def reject(member: dict[str, Any], reason: str) -> None:
            counts.rejected += 1
            rejects.write(json.dumps({"uid": member.get("_uid"), "reason": reason}) + "\n")

        wanted: dict[str, dict[str, Any]] = {}
        to_create: dict[str, dict[str, Any]] = {}
        for member in batch:
            contact_id = str(member.get("ic_contact_id") or "").strip()
            if contact_id:
                wanted.setdefault(contact_id, member)
                continue
            email = lql_email(member.get("email"))
            if email is None or not self.create_missing_contacts:
                reject(member, "no iContact Distinct ID (ic_contact_id) and no valid email")
                continue
            self._load_emails(hook, folder, index)
            found = index.contact_id(email)
            if found:
                counts.contacts_found_by_email += 1
                wanted.setdefault(found, member)
            else:
                to_create.setdefault(email, member)
        planned_new = 0
        if to_create:
            if dry_run:
                planned_new = len(to_create)
                counts.contacts_created += planned_new
            else:
                self._create(hook, folder, to_create, index, wanted, counts, reject)
        skipped = index.unsubscribed(list(wanted)) if wanted else set()
        counts.skipped_unsubscribed += len(skipped)
        ids = [cid for cid in wanted if cid not in skipped]
        if dry_run or not ids:
            counts.subscribed += len(ids) + planned_new
            return
        result = hook.subscribe(folder, list_id, ids)
        done = {str(s.get("contactId")) for s in result.items}
        counts.subscribed += len(done & set(ids))
        for cid in ids:
            if cid not in done:
                reason = next((w for w in result.warnings if cid in w), None) or "; ".join(result.warnings)
                reject(
                    wanted[cid], f"iContact did not subscribe contact {cid}: {reason or 'no reason given'}"
                )

    def _create(
        self,
        hook: IContactHook,
        folder: Folder,
        to_create: dict[str, dict[str, Any]],
        index: _Index,
        wanted: dict[str, dict[str, Any]],
        counts: DeliveryCounts,
        reject: Any,
    ) -> None:
        bodies = []
        for email, member in to_create.items():
            body = {"email": email}
            for source, target in (("first_name", "firstName"), ("last_name", "lastName")):
                if member.get(source):
                    body[target] = str(member[source])
            bodies.append(body)
        created = hook.upsert_contacts(folder, bodies)
        for contact in created.items:
            email = lql_email(contact.get("email"))
            if email in to_create and contact.get("contactId"):
                index.add_email(email, str(contact["contactId"]))
                wanted.setdefault(str(contact["contactId"]), to_create.pop(email))
                counts.contacts_created += 1
        for member in to_create.values():
            reason = "; ".join(created.warnings) or "no reason given"
            reject(member, f"iContact did not create the contact: {reason[:300]}")
