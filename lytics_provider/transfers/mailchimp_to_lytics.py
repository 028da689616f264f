"""Import a Mailchimp audience into Lytics ("Import Audiences"): ``mailchimp_subscribers`` and
``mailchimp_activity``.

``subscribers``: the audience's members changed since the last committed run
(``since_last_changed``, oldest change first, ``offset`` / ``count`` pages), one record per
member with the fields of the seed's mapping (``email``, ``euid``, ``leid``, names, location,
``listid`` / ``liststatus``, ``tags``, ``member_rating``). ``activity``: for each sent campaign
to the audience, each recipient's opens, clicks and bounces since that campaign's last imported
action (``/reports/{campaign_id}/email-activity``, ``since``), one record per action.

Both post to the Lytics stream in acknowledged batches (:class:`~lytics_provider.files.ingest.StreamWriter`):
the position of the last acknowledged record is saved in the run folder after every batch, so a
retried task skips what Lytics accepted; the watermark (newest ``last_changed``, newest action per
campaign) is committed to the job state only after Lytics accepted everything before it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from airflow.sdk import BaseOperator, Context

from lytics_provider.files.ingest import FileCheckpoint, StateCheckpoint, StreamWriter
from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.hooks.mailchimp import MailchimpHook
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.lytics import run_param
from lytics_provider.pipeline.workarea import JobState, run_dir

SUBSCRIBERS_STREAM = "mailchimp_subscribers"
ACTIVITY_STREAM = "mailchimp_activity"


@dataclass
class Watermark:
    """The newest timestamp imported and the keys imported at it.

    Mailchimp's ``since`` filters are exclusive and to the second, so a change in the same second
    as the newest one imported would be missed by asking "since the newest": the next read asks
    from one second earlier and skips what it already has.
    """

    at: str | None = None
    keys: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, value: Any) -> Watermark:
        if isinstance(value, dict):
            return cls(value.get("at"), set(value.get("keys") or []))
        return cls(str(value)) if value else cls()

    def as_state(self) -> dict[str, Any]:
        return {"at": self.at, "keys": sorted(self.keys)}

    def query_since(self) -> str | None:
        """The ``since`` to ask with: one second before :attr:`at`."""
        if not self.at:
            return None
        try:
            return (datetime.fromisoformat(self.at) - timedelta(seconds=1)).isoformat()
        except ValueError:
            return self.at

    def is_new(self, ts: str, key: str) -> bool:
        """True for what was not imported up to this watermark."""
        return self.at is None or ts > self.at or (ts == self.at and key not in self.keys)

    def advance(self, ts: str, key: str) -> None:
        if not ts:
            return
        if self.at is None or ts > self.at:
            self.at, self.keys = ts, {key}
        elif ts == self.at:
            self.keys.add(key)


@dataclass
class NewRecords:
    """What one pass of :meth:`_MailchimpImportBase.send_new` read and sent."""

    writer: StreamWriter
    dry_run: bool
    newest: Watermark
    read: int
    sent: int


def subscriber_record(member: dict[str, Any], list_id: str) -> dict[str, Any]:
    """One ``mailchimp_subscribers`` record (source names of the seed's default mapping)."""
    merge = member.get("merge_fields") or {}
    location = member.get("location") or {}
    record = {
        "email": member.get("email_address"),
        "euid": member.get("unique_email_id"),
        "leid": member.get("web_id"),
        "first_name": merge.get("FNAME"),
        "last_name": merge.get("LNAME"),
        "cc": location.get("country_code"),
        "region": location.get("region"),
        "latitude": location.get("latitude"),
        "longitude": location.get("longitude"),
        "timezone": location.get("timezone"),
        "listid": list_id,
        "liststatus": member.get("status"),
        "tags": [t.get("name") for t in member.get("tags") or [] if t.get("name")],
        "group": sorted(k for k, on in (member.get("interests") or {}).items() if on),
        "member_rating": member.get("member_rating"),
        "last_changed": member.get("last_changed"),
    }
    return {k: v for k, v in record.items() if v not in (None, "", [])}


def activity_records(row: dict[str, Any], list_id: str) -> Iterator[dict[str, Any]]:
    """``mailchimp_activity`` records of one recipient row of a campaign's email activity."""
    for action in row.get("activity") or []:
        record = {
            "email": row.get("email_address"),
            "euid": row.get("email_id"),
            "campaign_id": row.get("campaign_id"),
            "listid": list_id,
            "action": action.get("action"),
            "type": action.get("type"),
            "url": action.get("url"),
            "ip": action.get("ip"),
            "timestamp": action.get("timestamp"),
        }
        yield {k: v for k, v in record.items() if v not in (None, "")}


class _MailchimpImportBase(BaseOperator):
    """Shared arguments of the Mailchimp import tasks.

    :param job_id: the job (run folder and committed state).
    :param mailchimp_list: the Mailchimp audience (list) id or exact name.
    :param stream: the Lytics stream (default the task's ``default_stream``).
    :param mailchimp_conn_id: the ``mailchimp`` connection.
    :param lytics_conn_id: the Lytics connection.
    :param batch_size: records per Lytics request (also bounded by bytes).
    """

    template_fields = ("mailchimp_list", "stream")
    #: the stream when none is given
    default_stream: ClassVar[str]

    def __init__(
        self,
        *,
        job_id: str,
        mailchimp_list: str,
        stream: str | None = None,
        mailchimp_conn_id: str = MailchimpHook.default_conn_name,
        lytics_conn_id: str = LyticsHook.default_conn_name,
        batch_size: int = 1000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        self.stream = stream or self.default_stream

    def open_list(self) -> tuple[MailchimpHook, str]:
        """The Mailchimp hook and the id of the audience ``mailchimp_list`` names."""
        hook = MailchimpHook(self.mailchimp_conn_id)
        return hook, str(hook.resolve_list(self.mailchimp_list)["id"])

    def writer(self, context: Context, checkpoint: FileCheckpoint) -> tuple[StreamWriter, bool]:
        dry_run = run_param(context, "dry_run")
        writer = StreamWriter(
            LyticsHook(self.lytics_conn_id),
            self.stream,
            max_batch_records=self.batch_size,
            on_ack=checkpoint.save,
            send=not dry_run,
        )
        return writer, dry_run

    def send_new(
        self,
        context: Context,
        checkpoint: FileCheckpoint,
        committed: Watermark,
        items: Iterable[tuple[dict[str, Any], str, str]],
    ) -> NewRecords:
        """Post the records of ``items`` that are new since ``committed``, then flush.

        The first records Lytics acknowledged in an earlier try of this run (``checkpoint``) are
        skipped; the newest watermark is advanced over every record read.

        :param context: the task's context (``dry_run``).
        :param checkpoint: the run folder's position of the last acknowledged record.
        :param committed: the watermark of the last committed run.
        :param items: ``(record, timestamp, key)`` in the order Mailchimp answers them.
        """
        done = int((checkpoint.load() or {}).get("done") or 0)
        writer, dry_run = self.writer(context, checkpoint)
        if done:
            self.log.info("Resuming after record %d (acknowledged by Lytics before)", done)
        newest = Watermark(committed.at, set(committed.keys))
        read = sent = 0
        for read, (record, ts, key) in enumerate(items, start=1):
            newest.advance(ts, key)
            if read <= done or not committed.is_new(ts, key):
                continue
            sent += 1
            writer.add(record, {"done": read})
        writer.flush()
        return NewRecords(writer, dry_run, newest, read, sent)


class MailchimpSubscribersToLyticsOperator(_MailchimpImportBase):
    """Members changed since the last committed run → ``mailchimp_subscribers`` (module docstring)."""

    default_stream = SUBSCRIBERS_STREAM

    def execute(self, context: Context) -> dict[str, Any]:
        hook, list_id = self.open_list()
        state = StateCheckpoint(self.job_id, f"mailchimp_subscribers_since:{list_id}")
        committed = Watermark.load(state.load())
        checkpoint = FileCheckpoint(run_dir(self.job_id, context["run_id"]) / f"subscribers_{list_id}.json")
        members = (
            (
                subscriber_record(member, list_id),
                str(member.get("last_changed") or ""),
                str(member.get("id") or member.get("email_address")),
            )
            for member in hook.iter_members(list_id, committed.query_since())
        )
        new = self.send_new(context, checkpoint, committed, members)
        report = {
            "stream": self.stream,
            "list": list_id,
            "since": committed.at,
            "members": new.read,
            "sent": new.writer.records,
            "accepted": new.writer.accepted,
            "rejected_by_lytics": new.writer.rejected,
            "dry_run": new.dry_run,
            "mailchimp_calls": hook.calls,
        }
        if not new.dry_run:
            state.save(new.newest.as_state())
            checkpoint.clear()
        self.log.info("Mailchimp subscribers import: %s", report)
        return report


class MailchimpActivityToLyticsOperator(_MailchimpImportBase):
    """Opens, clicks and bounces of the audience's campaigns → ``mailchimp_activity`` (module docstring)."""

    default_stream = ACTIVITY_STREAM

    def execute(self, context: Context) -> dict[str, Any]:
        hook, list_id = self.open_list()
        state = JobState(self.job_id)
        key = f"mailchimp_activity_since:{list_id}"
        marks: dict[str, Any] = dict(state.get(key) or {})
        folder = run_dir(self.job_id, context["run_id"])
        report: dict[str, Any] = {"stream": self.stream, "list": list_id, "campaigns": 0, "actions": 0}
        dry_run = False
        for campaign in hook.iter_campaigns(list_id):
            cid = str(campaign["id"])
            committed = Watermark.load(marks.get(cid))
            checkpoint = FileCheckpoint(folder / f"activity_{cid}.json")
            actions = (
                (
                    record,
                    str(record.get("timestamp") or ""),
                    "|".join(str(record.get(k) or "") for k in ("email", "action", "timestamp", "url")),
                )
                for row in hook.iter_email_activity(cid, committed.query_since())
                for record in activity_records({**row, "campaign_id": cid}, list_id)
            )
            new = self.send_new(context, checkpoint, committed, actions)
            dry_run = new.dry_run
            report["campaigns"] += 1
            report["actions"] += new.sent
            if not dry_run:
                marks[cid] = new.newest.as_state()
                state.update(**{key: marks})
                checkpoint.clear()
        report.update(dry_run=dry_run, mailchimp_calls=hook.calls)
        self.log.info("Mailchimp activity import: %s", report)
        return report
