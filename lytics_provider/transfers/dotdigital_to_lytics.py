"""Import Contacts & Activity: Dotdigital contacts and campaign activity into Lytics streams.

Each run reads what changed since the last successful run (the watermark in the job's state):

1. the account, then every address book; per book the contacts modified since the watermark and
   those unsubscribed from it; then the account's suppressions since the watermark;
2. the campaigns with activity since the watermark; per campaign the sends, opens and clicks.

Contacts are merged per contact id in a run-local SQLite file (a contact in five books is one
record) and sent to ``dotmailer_contacts``; activity is staged as JSON lines and sent to
``dotmailer_activity``. The new watermark is the Dotdigital server time read at the start of the
run, and it is saved (a state checkpoint, :mod:`lytics_provider.files.ingest`) only after Lytics
acknowledged both streams, so a failed run is read again.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator, Context

from lytics_provider.files.ingest import StateCheckpoint, StreamWriter
from lytics_provider.hooks.dotdigital import DotdigitalHook
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.lytics import run_param
from lytics_provider.pipeline.retention import prune_job_runs
from lytics_provider.pipeline.workarea import JobState, run_dir

CONTACTS_STREAM = "dotmailer_contacts"
ACTIVITY_STREAM = "dotmailer_activity"
DEFAULT_SINCE = "2000-01-01T00:00:00"
#: Dotdigital data field -> Lytics field (``include/mappings/dotmailer_contacts.yaml`` documents it).
DATA_FIELD_MAP = {"FIRSTNAME": "first_name", "LASTNAME": "last_name", "BIRTHDAY": "birthdate"}


def contact_record(contact: dict[str, Any], account_id: str) -> dict[str, Any]:
    """A ``dotmailer_contacts`` record from an ``ApiContact`` (custom data fields as ``dm_<name>``)."""
    record: dict[str, Any] = {
        "email": str(contact.get("email") or "").lower(),
        "dm_contact_id": str(contact.get("id")),
        "dm_accountid": [account_id],
        "dm_email_type": contact.get("emailType"),
        "dm_optin_type": contact.get("optInType"),
    }
    if contact.get("status"):
        record["dm_account_status"] = {account_id: str(contact["status"]).lower()}
    for item in contact.get("dataFields") or []:
        key, value = str(item.get("key") or ""), item.get("value")
        if not key or value in (None, ""):
            continue
        record[DATA_FIELD_MAP.get(key.upper(), f"dm_{key.lower()}")] = value
    return record


class _ContactStage:
    """Contacts merged by id: data from the latest read, address books and statuses accumulated."""

    def __init__(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("CREATE TABLE contacts (id TEXT PRIMARY KEY, record TEXT NOT NULL)")
        self.db.execute("BEGIN")

    def merge(self, key: str, update: dict[str, Any], books: dict[str, str] | None = None) -> None:
        row = self.db.execute("SELECT record FROM contacts WHERE id = ?", (key,)).fetchone()
        record = json.loads(row[0]) if row else {}
        for name, value in update.items():
            if name == "dm_account_status" and name in record:
                record[name].update(value)
            elif value is not None:
                record[name] = value
        if books:
            record.setdefault("dm_addressbook_status", {}).update(books)
            listed = set(record.get("dm_address_books") or [])
            listed.update(k.partition("_")[2] for k, v in books.items() if v != "unsubscribed")
            record["dm_address_books"] = sorted(listed)
            record["dm_addressbook_status_ts"] = int(time.time() * 1000)
        self.db.execute("INSERT OR REPLACE INTO contacts VALUES (?, ?)", (key, json.dumps(record)))

    def records(self) -> Iterator[dict[str, Any]]:
        self.db.execute("COMMIT")
        for (text,) in self.db.execute("SELECT record FROM contacts ORDER BY id"):
            yield json.loads(text)

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM contacts").fetchone()[0])

    def close(self) -> None:
        self.db.close()


def event_id(*parts: Any) -> str:
    """A stable id for one activity event, so a re-read event has the same identity."""
    return hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=12).hexdigest()


class DotdigitalToLyticsOperator(BaseOperator):
    """Import Dotdigital contacts and sends/opens/clicks since the last successful run into Lytics."""

    template_fields: Sequence[str] = ("initial_since",)
    ui_color = "#9dc3e6"

    def __init__(
        self,
        *,
        job_id: str,
        dotdigital_conn_id: str = DotdigitalHook.default_conn_name,
        lytics_conn_id: str = "lytics_default",
        initial_since: str = DEFAULT_SINCE,
        include_activity: bool = True,
        contacts_stream: str = CONTACTS_STREAM,
        activity_stream: str = ACTIVITY_STREAM,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())

    def execute(self, context: Context) -> dict[str, Any]:
        from lytics_provider.hooks.lytics import LyticsHook

        dry_run, full = run_param(context, "dry_run"), run_param(context, "full_refresh")
        state = JobState(self.job_id)
        watermark = StateCheckpoint(self.job_id, "watermark")
        since = self.initial_since if full else (watermark.load() or self.initial_since)
        hook = DotdigitalHook(self.dotdigital_conn_id)
        until = hook.server_time().rstrip("Z").split(".")[0]
        account = str(hook.account_info().get("id"))
        folder = run_dir(self.job_id, context["run_id"])
        self.log.info("Reading Dotdigital changes since %s (until %s)", since, until)
        stage = _ContactStage(folder / "dotdigital_contacts.db")
        try:
            self._contacts(hook, stage, since, account)
            contacts = stage.count()
            activity_path, events = folder / "dotdigital_activity.jsonl", 0
            if self.include_activity:
                events = self._activity(hook, since, activity_path)
            lytics = LyticsHook(self.lytics_conn_id)
            with StreamWriter(lytics, self.contacts_stream, dryrun=dry_run) as sent_contacts:
                sent_contacts.extend(stage.records())
            sent_events = StreamWriter(lytics, self.activity_stream, timestamp_field="ts", dryrun=dry_run)
            if events:
                with sent_events:
                    sent_events.extend(_read_jsonl(activity_path))
        finally:
            stage.close()
        report = {
            "since": since,
            "until": until,
            "contacts": contacts,
            "events": events,
            "contacts_accepted": sent_contacts.accepted,
            "events_accepted": sent_events.accepted,
            "dotdigital_calls": hook.calls,
            "dry_run": dry_run,
        }
        if dry_run:
            self.log.info("Dry run: watermark not moved. Report: %s", report)
            return report
        watermark.save(until)
        state.update(last_run_id=context["run_id"], last_report=report)
        prune_job_runs(self.job_id, context["run_id"])
        self.log.info("Imported; watermark moved to %s. Report: %s", until, report)
        return report

    def _contacts(self, hook: DotdigitalHook, stage: _ContactStage, since: str, account: str) -> None:
        for book in hook.list_address_books():
            book_id = str(book["id"])
            for contact in hook.iter_modified_since(since, book_id=book_id, full=True):
                status = "unsubscribed" if contact.get("status") == "Unsubscribed" else "subscribed"
                stage.merge(
                    str(contact["id"]), contact_record(contact, account), {f"{account}_{book_id}": status}
                )
            for item in hook.iter_unsubscribed_since(since, book_id=book_id):
                contact = item.get("suppressedContact") or {}
                update = {
                    "email": str(contact.get("email") or "").lower(),
                    "dm_contact_id": str(contact["id"]),
                }
                stage.merge(str(contact["id"]), update, {f"{account}_{book_id}": "unsubscribed"})
        for item in hook.iter_suppressed_since(since):
            contact = item.get("suppressedContact") or {}
            reason = str(item.get("reason") or "Suppressed").lower()
            stage.merge(
                str(contact["id"]),
                {
                    "email": str(contact.get("email") or "").lower(),
                    "dm_contact_id": str(contact["id"]),
                    "dm_account_status": {account: reason},
                },
            )

    def _activity(self, hook: DotdigitalHook, since: str, path: Path) -> int:
        count = 0
        with path.open("w", encoding="utf-8") as out:
            for campaign in hook.iter_campaigns_with_activity_since(since):
                cid, name = campaign["id"], campaign.get("name")
                sources = (
                    ("send", hook.iter_campaign_activities(cid, since), "dateSent"),
                    ("open", hook.iter_campaign_opens(cid, since), "dateOpened"),
                    ("click", hook.iter_campaign_clicks(cid, since), "dateClicked"),
                )
                for kind, items, stamp in sources:
                    for item in items:
                        event = {
                            "event_id": event_id(
                                kind, cid, item.get("contactId"), item.get(stamp), item.get("url")
                            ),
                            "event": kind,
                            "email": str(item.get("email") or "").lower(),
                            "dm_contact_id": str(item.get("contactId")),
                            "campaign_id": str(cid),
                            "campaign_name": name,
                            "ts": item.get(stamp),
                        }
                        if kind == "click":
                            event["url"] = item.get("url")
                        if kind == "open":
                            event["mail_client"] = item.get("mailClient")
                        out.write(json.dumps(event) + "\n")
                        count += 1
        return count


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)
