"""Import iContact contacts into ``icontact_users`` and message activity into ``icontact_activity``.

Each task works in three steps inside its run directory (``run_dir(job_id, run_id)``), so a
retried task resumes instead of starting over:

1. **stage**: read iContact and write what is new to a run-local SQLite file (``users.db`` /
   ``activity.db``), with rejected rows in ``*_rejects.jsonl`` (reason, id, kind; ``RejectsWriter``);
2. **send**: post the staged records to Lytics in batches, saving after each acknowledged batch
   how far it got;
3. **commit**: once Lytics acknowledged everything, fold the run into the job's state file
   ``<job dir>/icontact_state.db`` in one transaction (idempotent per run id).

What is "new":

* contacts: those whose mapped record differs from the one last sent (a digest per contact);
  with Filter by AID, only contacts tagged with the AID: those named in the bounces, opens,
  clicks or unsubscribes of a message whose HTML body carries ``<!-- lytics-aid:AID -->`` (the
  iContact API links a contact to a message through these collections only);
* activity: per message and kind, events later than the newest one already imported, and
  events inside the ``lookback_minutes`` before it that were not imported yet (their ids are
  kept for that window), so late-arriving events are caught and nothing is sent twice.

The activity stream gets one *event* record per new event, then one *profile* record per contact
whose activity changed, carrying the seed's aggregations over all of that contact's imported
events (see :mod:`lytics_provider.pipeline.icontact_mapping`). A dry run stages and reports but
neither sends nor commits.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator, Context

from lytics_provider.files.ingest import SqliteCheckpoint, StreamWriter
from lytics_provider.hooks.icontact import ACTIVITY_COLLECTIONS, Folder, IContactHook
from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.lytics import run_param
from lytics_provider.pipeline.icontact_mapping import (
    DEFAULT_SOURCE_TIMEZONE,
    ContactMapper,
    ProfileAggregate,
    event_record,
    profile_record,
    read_event,
)
from lytics_provider.pipeline.progress import Progress
from lytics_provider.pipeline.rejects import RejectsWriter
from lytics_provider.pipeline.retention import prune_job_runs
from lytics_provider.pipeline.workarea import JobState, job_dir, run_dir

USERS_STREAM = "icontact_users"
ACTIVITY_STREAM = "icontact_activity"
SEND_BATCH = 1000
AID_TAG = "<!-- lytics-aid:{aid} -->"

_STATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (id TEXT PRIMARY KEY, digest TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS profiles (contact_id TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS watermarks (key TEXT PRIMARY KEY, ts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS seen (key TEXT, event_id TEXT, ts INTEGER NOT NULL, PRIMARY KEY (key, event_id));
CREATE TABLE IF NOT EXISTS runs (run_id TEXT, task TEXT, PRIMARY KEY (run_id, task));
"""
_STAGE_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (seq INTEGER PRIMARY KEY, id TEXT UNIQUE, digest TEXT, record TEXT);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, key TEXT, event_id TEXT, contact_id TEXT, event_type TEXT, ts INTEGER,
    url TEXT, record TEXT, UNIQUE (key, event_id));
CREATE TABLE IF NOT EXISTS profiles (
    seq INTEGER PRIMARY KEY, contact_id TEXT UNIQUE, state TEXT, record TEXT);
"""


def _connect(path: Path, schema: str) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(schema)
    return db


def _insert(db: sqlite3.Connection, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
    """``executemany`` in one transaction."""
    db.execute("BEGIN")
    try:
        db.executemany(sql, rows)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def state_db(job_id: str) -> sqlite3.Connection:
    """The job's committed import state (contact digests, profile aggregates, watermarks)."""
    return _connect(job_dir(job_id) / "icontact_state.db", _STATE_SCHEMA)


def _meta(db: sqlite3.Connection, key: str, default: str | None = None) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else default


def _set_meta(db: sqlite3.Connection, **values: Any) -> None:
    _insert(db, "INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in values.items()])


@contextmanager
def _commit_once(state: sqlite3.Connection, run_id: str, task: str) -> Iterator[bool]:
    """One transaction on the job state that records ``(run_id, task)``; yields ``False`` (and does
    nothing) when that run's task was committed before."""
    if state.execute("SELECT 1 FROM runs WHERE run_id = ? AND task = ?", (run_id, task)).fetchone():
        yield False
        return
    state.execute("BEGIN IMMEDIATE")
    try:
        yield True
        state.execute("INSERT INTO runs VALUES (?, ?)", (run_id, task))
        state.execute("COMMIT")
    except BaseException:
        state.execute("ROLLBACK")
        raise


def _digest(record: dict[str, Any]) -> str:
    return hashlib.blake2b(json.dumps(record, sort_keys=True).encode(), digest_size=16).hexdigest()


class _IContactImportBase(BaseOperator):
    """Shared options of the two import tasks.

    :param job_id: the job whose state and run directories the task uses.
    :param aid: Filter by AID: only messages tagged ``<!-- lytics-aid:AID -->``, and only the
        contacts named in their activity, are imported; ``None`` imports everything.
    :param collections: the activity collections read per message.
    """

    def __init__(
        self,
        *,
        job_id: str,
        icontact_conn_id: str = IContactHook.default_conn_name,
        lytics_conn_id: str = LyticsHook.default_conn_name,
        source_account: str | None = None,
        source_client_folder: str | None = None,
        source_timezone: str = DEFAULT_SOURCE_TIMEZONE,
        page_size: int = 500,
        send_batch: int = SEND_BATCH,
        aid: int | None = None,
        collections: Sequence[str] = ACTIVITY_COLLECTIONS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        self.collections = list(collections)

    def _folder(self, hook: IContactHook) -> Folder:
        return hook.resolve_folder(self.source_account, self.source_client_folder)

    def _messages(self, hook: IContactHook, folder: Folder, stage: sqlite3.Connection) -> Iterator[str]:
        """Ids of the folder's messages; with ``aid`` set, only those tagged with it (Filter by AID).
        Records how many were read and skipped in the stage's meta."""
        tag = AID_TAG.format(aid=self.aid) if self.aid is not None else None
        read = skipped = 0
        for message in hook.iter_messages(folder):
            if tag is not None and tag not in str(message.get("htmlBody") or ""):
                skipped += 1
                continue
            read += 1
            yield str(message["messageId"])
        _set_meta(stage, messages=read, skipped=skipped)

    def _stage(
        self, hook: IContactHook, stage: sqlite3.Connection, state: sqlite3.Connection, workdir: Path
    ) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @contextmanager
    def _staged(
        self, run_id: str, stage_file: str
    ) -> Iterator[tuple[IContactHook, sqlite3.Connection, sqlite3.Connection]]:
        """This run's stage (read from iContact on first use) and the job's state, both closed after."""
        workdir = run_dir(self.job_id, run_id)
        icontact = IContactHook(self.icontact_conn_id, page_size=self.page_size)
        with (
            closing(_connect(workdir / stage_file, _STAGE_SCHEMA)) as stage,
            closing(state_db(self.job_id)) as state,
        ):
            if _meta(stage, "staged") is None:
                self._stage(icontact, stage, state, workdir)
            yield icontact, stage, state

    def _send(
        self, lytics: LyticsHook, stage: sqlite3.Connection, table: str, stream: str, checkpoint: str
    ) -> int:
        """Post staged rows after the checkpoint in batches; save the checkpoint after each batch."""
        mark = SqliteCheckpoint(stage, checkpoint)
        sent = int(mark.load() or 0)
        total = stage.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        progress = Progress(self.log, f"{stream} records sent", total)
        progress.done = stage.execute(f"SELECT count(*) FROM {table} WHERE seq <= ?", (sent,)).fetchone()[0]
        writer = StreamWriter(lytics, stream, max_batch_records=self.send_batch, on_ack=mark.save)
        while True:
            rows = stage.execute(
                f"SELECT seq, record FROM {table} WHERE seq > ? ORDER BY seq LIMIT ?", (sent, self.send_batch)
            ).fetchall()
            if not rows:
                break
            for seq, text in rows:
                writer.add(json.loads(text), seq, len(text.encode()))
            writer.flush()
            sent = rows[-1][0]
            progress.advance(len(rows))
        progress.finish()
        if writer.rejected:
            self.log.warning("Lytics rejected %d of %d %s records", writer.rejected, writer.records, stream)
        return total


class IContactUsersToLyticsOperator(_IContactImportBase):
    """Import the folder's contacts into ``icontact_users`` with the seed's default mapping.

    Sends only contacts whose mapped record changed since the last committed run. With ``aid``
    set (Filter by AID) only contacts tagged with the AID are sent: those named in the activity
    (bounces, opens, clicks, unsubscribes) of a message whose HTML body carries
    ``<!-- lytics-aid:AID -->``. Returns a report: contacts read, sent, unchanged, skipped by the
    AID filter, rejected (with the rejects file), API calls.
    """

    def __init__(self, *, stream: str = USERS_STREAM, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stream = stream

    def execute(self, context: Context) -> dict[str, Any]:
        dry_run = run_param(context, "dry_run")
        run_id = context["run_id"]
        with self._staged(run_id, "users.db") as (icontact, stage, state):
            report = {
                "stream": self.stream,
                "read": int(_meta(stage, "read", "0") or 0),
                "to_send": stage.execute("SELECT count(*) FROM users").fetchone()[0],
                "unchanged": int(_meta(stage, "unchanged", "0") or 0),
                "skipped_by_aid": int(_meta(stage, "skipped_by_aid", "0") or 0),
                "rejected": int(_meta(stage, "rejected", "0") or 0),
                "invalid_emails": int(_meta(stage, "invalid_emails", "0") or 0),
                "rejects_file": _meta(stage, "rejects_file") or None,
                "dry_run": dry_run,
            }
            if dry_run:
                self.log.info(
                    "Dry run: %d contacts would be sent to %s; nothing sent", report["to_send"], self.stream
                )
            else:
                lytics = LyticsHook(self.lytics_conn_id)
                report["sent"] = self._send(lytics, stage, "users", self.stream, "sent")
                report["lytics_calls"] = lytics.calls
                self._commit(stage, state, run_id)
            report["icontact_calls"] = icontact.calls + int(_meta(stage, "icontact_calls", "0") or 0)
        self.log.info("iContact users import: %s", report)
        return report

    def _stage(
        self, hook: IContactHook, stage: sqlite3.Connection, state: sqlite3.Connection, workdir: Path
    ) -> None:
        folder = self._folder(hook)
        tagged = self._tagged_contacts(hook, folder, stage) if self.aid is not None else None
        mapper = ContactMapper(self.source_timezone)
        rejects = RejectsWriter(workdir / "users_rejects.jsonl", preview_lines=0, logger=self.log)
        stage.execute("DELETE FROM users")
        read = unchanged = invalid = rejected = skipped = 0
        progress = Progress(self.log, "iContact contacts read")
        try:
            batch: list[tuple[str, str, str]] = []
            for contact in hook.iter_contacts(folder, status="total"):
                read += 1
                progress.advance(1)
                if tagged is not None and str(contact.get("contactId")) not in tagged:
                    skipped += 1
                    continue
                result = mapper.map(contact)
                if result.record is None:
                    rejected += 1
                    ident = str(contact.get("email") or f"row {read}")
                    rejects.reject(result.reason or "rejected", read, {"kind": "contact"}, ident)
                    continue
                if result.notes:
                    invalid += 1
                    reason = "; ".join(result.notes)
                    rejects.reject(reason, read, {"kind": "contact_field"}, result.record["ic_contact_id"])
                ident = result.record["ic_contact_id"]
                digest = _digest(result.record)
                row = state.execute("SELECT digest FROM contacts WHERE id = ?", (ident,)).fetchone()
                if row and row[0] == digest:
                    unchanged += 1
                    continue
                batch.append((ident, digest, json.dumps(result.record, separators=(",", ":"))))
                if len(batch) >= 1000:
                    _insert(
                        stage, "INSERT OR REPLACE INTO users (id, digest, record) VALUES (?, ?, ?)", batch
                    )
                    batch.clear()
            _insert(stage, "INSERT OR REPLACE INTO users (id, digest, record) VALUES (?, ?, ?)", batch)
        finally:
            rejects.close()
        progress.finish()
        _set_meta(
            stage,
            read=read,
            unchanged=unchanged,
            skipped_by_aid=skipped,
            rejected=rejected,
            invalid_emails=invalid,
            rejects_file=str(rejects.path) if rejects.count else "",
            icontact_calls=hook.calls,
            staged=1,
        )

    def _tagged_contacts(self, hook: IContactHook, folder: Folder, stage: sqlite3.Connection) -> set[str]:
        """Ids of the contacts named in any activity collection of the messages tagged with the AID."""
        tagged: set[str] = set()
        for message_id in self._messages(hook, folder, stage):
            for collection in self.collections:
                for row in hook.iter_activity(folder, message_id, collection):
                    if row.get("contactId") not in (None, ""):
                        tagged.add(str(row["contactId"]))
        self.log.info("Filter by AID %s: %d contacts are tagged", self.aid, len(tagged))
        return tagged

    def _commit(self, stage: sqlite3.Connection, state: sqlite3.Connection, run_id: str) -> None:
        with _commit_once(state, run_id, "users") as fresh:
            if fresh:
                state.executemany(
                    "INSERT OR REPLACE INTO contacts VALUES (?, ?)",
                    stage.execute("SELECT id, digest FROM users ORDER BY seq"),
                )


class IContactActivityToLyticsOperator(_IContactImportBase):
    """Import bounces, opens, clicks and unsubscribes of the folder's messages into ``icontact_activity``.

    With ``aid`` set (Filter by AID) only messages whose HTML body carries
    ``<!-- lytics-aid:AID -->`` are read. Returns a report: messages read and skipped, new
    events per type, profiles sent, rejects, API calls.
    """

    def __init__(self, *, stream: str = ACTIVITY_STREAM, lookback_minutes: int = 1440, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())

    def execute(self, context: Context) -> dict[str, Any]:
        dry_run = run_param(context, "dry_run")
        run_id = context["run_id"]
        with self._staged(run_id, "activity.db") as (icontact, stage, state):
            if _meta(stage, "profiled") is None:
                self._profiles(stage, state)
            by_type = dict(
                stage.execute("SELECT event_type, count(*) FROM events GROUP BY event_type").fetchall()
            )
            report: dict[str, Any] = {
                "stream": self.stream,
                "messages": int(_meta(stage, "messages", "0") or 0),
                "messages_skipped_by_aid": int(_meta(stage, "skipped", "0") or 0),
                "new_events": sum(by_type.values()),
                "new_events_by_type": by_type,
                "profiles": stage.execute("SELECT count(*) FROM profiles").fetchone()[0],
                "rejected": int(_meta(stage, "rejected", "0") or 0),
                "rejects_file": _meta(stage, "rejects_file") or None,
                "dry_run": dry_run,
            }
            if dry_run:
                self.log.info("Dry run: nothing sent to %s, state not committed", self.stream)
            else:
                lytics = LyticsHook(self.lytics_conn_id)
                self._send(lytics, stage, "events", self.stream, "sent_events")
                self._send(lytics, stage, "profiles", self.stream, "sent_profiles")
                report["lytics_calls"] = lytics.calls
                self._commit(stage, state, run_id)
            report["icontact_calls"] = icontact.calls + int(_meta(stage, "icontact_calls", "0") or 0)
        self.log.info("iContact activity import: %s", report)
        return report

    # -- stage ---------------------------------------------------------------------------------
    def _is_new(self, state: sqlite3.Connection, key: str, mark: int | None, event_id: str, ts: int) -> bool:
        if mark is None:
            return True
        if ts <= mark - self.lookback_minutes * 60_000:
            return False
        seen = state.execute("SELECT 1 FROM seen WHERE key = ? AND event_id = ?", (key, event_id)).fetchone()
        return seen is None

    def _stage(
        self, hook: IContactHook, stage: sqlite3.Connection, state: sqlite3.Connection, workdir: Path
    ) -> None:
        folder = self._folder(hook)
        rejects = RejectsWriter(workdir / "activity_rejects.jsonl", preview_lines=0, logger=self.log)
        stage.execute("DELETE FROM events")
        marks = dict(state.execute("SELECT key, ts FROM watermarks").fetchall())
        progress = Progress(self.log, "iContact activity rows read")
        insert = (
            "INSERT OR IGNORE INTO events (key, event_id, contact_id, event_type, ts, url, record) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        try:
            for message_id in self._messages(hook, folder, stage):
                for collection in self.collections:
                    key = f"{message_id}/{collection}"
                    mark = marks.get(key)
                    rows = []
                    for raw in hook.iter_activity(folder, message_id, collection):
                        progress.advance(1)
                        event = read_event(message_id, collection, raw, self.source_timezone)
                        if isinstance(event, str):
                            ident = f"{message_id}/{raw.get('contactId')}"
                            rejects.reject(event, None, {"kind": collection}, ident)
                            continue
                        if not self._is_new(state, key, mark, event.event_id, event.ts):
                            continue
                        record = json.dumps(event_record(event), separators=(",", ":"))
                        rows.append(
                            (
                                key,
                                event.event_id,
                                event.contact_id,
                                event.event_type,
                                event.ts,
                                event.url,
                                record,
                            )
                        )
                        if len(rows) >= 1000:
                            _insert(stage, insert, rows)
                            rows.clear()
                    _insert(stage, insert, rows)
        finally:
            rejects.close()
        progress.finish()
        _set_meta(
            stage,
            rejected=rejects.count,
            rejects_file=str(rejects.path) if rejects.count else "",
            icontact_calls=hook.calls,
            staged=1,
        )

    def _profiles(self, stage: sqlite3.Connection, state: sqlite3.Connection) -> None:
        """Merge this run's events per contact into the committed aggregates (streamed by contact)."""
        stage.execute("DELETE FROM profiles")
        out: list[tuple[str, str, str]] = []

        def flush(contact_id: str | None, delta: ProfileAggregate | None) -> None:
            if contact_id is None or delta is None:
                return
            row = state.execute("SELECT state FROM profiles WHERE contact_id = ?", (contact_id,)).fetchone()
            merged = ProfileAggregate.from_state(json.loads(row[0]) if row else None).merge(delta)
            record = profile_record(contact_id, merged)
            out.append((contact_id, json.dumps(merged.to_state()), json.dumps(record, separators=(",", ":"))))
            if len(out) >= 1000:
                _insert(stage, "INSERT INTO profiles (contact_id, state, record) VALUES (?, ?, ?)", out)
                out.clear()

        current: str | None = None
        delta: ProfileAggregate | None = None
        for contact_id, event_type, ts, url in stage.execute(
            "SELECT contact_id, event_type, ts, url FROM events ORDER BY contact_id, seq"
        ):
            if contact_id != current:
                flush(current, delta)
                current, delta = contact_id, ProfileAggregate()
            assert delta is not None
            delta.add(event_type, ts, url)
        flush(current, delta)
        _insert(stage, "INSERT INTO profiles (contact_id, state, record) VALUES (?, ?, ?)", out)
        _set_meta(stage, profiled=1)

    # -- commit --------------------------------------------------------------------------------
    def _commit(self, stage: sqlite3.Connection, state: sqlite3.Connection, run_id: str) -> None:
        """Fold the acknowledged run into the state: aggregates, watermarks, ids inside the lookback."""
        window = self.lookback_minutes * 60_000
        with _commit_once(state, run_id, "activity") as fresh:
            if not fresh:
                return
            state.executemany(
                "INSERT OR REPLACE INTO profiles VALUES (?, ?)",
                stage.execute("SELECT contact_id, state FROM profiles ORDER BY seq"),
            )
            for key, newest in stage.execute("SELECT key, max(ts) FROM events GROUP BY key").fetchall():
                row = state.execute("SELECT ts FROM watermarks WHERE key = ?", (key,)).fetchone()
                mark = max(newest, row[0]) if row else newest
                state.execute("INSERT OR REPLACE INTO watermarks VALUES (?, ?)", (key, mark))
                state.executemany(
                    "INSERT OR IGNORE INTO seen VALUES (?, ?, ?)",
                    stage.execute(
                        "SELECT key, event_id, ts FROM events WHERE key = ? AND ts > ?",
                        (key, mark - window),
                    ),
                )
                state.execute("DELETE FROM seen WHERE key = ? AND ts <= ?", (key, mark - window))


class IContactImportReportOperator(BaseOperator):
    """Combine the users and activity reports, record them in the job state and return them."""

    def __init__(
        self, *, job_id: str, users_task_id: str = "users", activity_task_id: str = "activity", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())

    def execute(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        report = {
            "users": ti.xcom_pull(task_ids=self.users_task_id) or {},
            "activity": ti.xcom_pull(task_ids=self.activity_task_id) or {},
            "run_id": context["run_id"],
        }
        if not (report["users"].get("dry_run") or report["activity"].get("dry_run")):
            JobState(self.job_id).update(last_run_id=context["run_id"], last_report=report)
            prune_job_runs(self.job_id, context["run_id"])
        self.log.info("iContact import report: %s", report)
        return report
