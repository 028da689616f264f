"""Import Contacts and Activity: HubSpot contacts into ``hubspot_contacts``, email events into
``hubspot_activity``.

Each run reads what changed since the last successful run, up to the run's start time (fixed for
the run, so a retry reads the same window):

* **contacts** (``import_contacts``): the contacts search API, sorted by ``lastmodifieddate``,
  page by page (``after`` cursor; a new query from the last modification time when a query reaches
  HubSpot's 10,000-result cap). After Lytics acknowledged a page, the page's newest modification
  time is saved as the contacts checkpoint: a retried task, or the next run, starts there (contacts
  modified in that same millisecond are read again, never skipped);
* **events** (``import_events``): the email events API from the last run's end to this run's
  start, page by page (``offset`` cursor). After Lytics acknowledged a page, its cursor is saved in
  the run folder, so a retried task continues after it; the window's end becomes the events
  checkpoint once every page was acknowledged.

A dry run reads and counts, sends with Lytics' ``dryrun`` and moves no checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseOperator, Context

from lytics_provider.files.ingest import FileCheckpoint, StateCheckpoint, StreamWriter
from lytics_provider.hooks.hubspot import HubspotHook
from lytics_provider.operators.lytics import as_bool
from lytics_provider.pipeline.workarea import JobState, run_dir

CONTACTS_STREAM = "hubspot_contacts"
ACTIVITY_STREAM = "hubspot_activity"
DEFAULT_SINCE = "2000-01-01"
DEFAULT_PROPERTIES = (
    "email", "firstname", "lastname", "phone", "company", "jobtitle", "city", "state", "country",
    "lifecyclestage", "hs_lead_status", "createdate", "lastmodifieddate",
)  # fmt: skip
RENAMED = {"firstname": "first_name", "lastname": "last_name", "jobtitle": "job_title"}


def to_ms(day: str) -> int:
    """Epoch milliseconds of an ISO date or date-time (UTC when it has no offset)."""
    moment = datetime.fromisoformat(day.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def contact_record(contact: dict[str, Any]) -> dict[str, Any]:
    """A ``hubspot_contacts`` record: ``hubspot_id``, ``email`` and the properties read."""
    props = dict(contact.get("properties") or {})
    record: dict[str, Any] = {"hubspot_id": str(contact.get("id") or props.get("hs_object_id"))}
    for name, value in props.items():
        if value in (None, "") or name == "hs_object_id":
            continue
        record[RENAMED.get(name, name)] = str(value).strip().lower() if name == "email" else value
    return record


def event_record(event: dict[str, Any]) -> dict[str, Any]:
    """A ``hubspot_activity`` record from an email event."""
    record: dict[str, Any] = {
        "event_id": str(event.get("id")),
        "event": str(event.get("type") or "").lower(),
        "email": str(event.get("recipient") or "").strip().lower(),
        "ts": event.get("created"),
    }
    for source, target in (
        ("emailCampaignId", "campaign_id"),
        ("appName", "app_name"),
        ("url", "url"),
        ("portalId", "hubspot_portal_id"),
    ):
        if event.get(source) not in (None, ""):
            record[target] = event[source]
    return record


class HubspotToLyticsOperator(BaseOperator):
    """Import HubSpot contacts and email events changed since the last run; see the module docstring.

    :param job_id: the job's id (checkpoints, run folder).
    :param hubspot_conn_id: the ``hubspot`` connection.
    :param lytics_conn_id: the Lytics connection.
    :param import_contacts: read contacts into ``contacts_stream``.
    :param import_events: read email events into ``activity_stream``.
    :param contact_properties: the contact properties read.
    :param initial_since: where the first run starts (ISO date).
    :param contacts_stream: the Lytics stream of contacts.
    :param activity_stream: the Lytics stream of email events.
    """

    template_fields: Sequence[str] = ("initial_since",)

    def __init__(
        self,
        *,
        job_id: str,
        hubspot_conn_id: str = HubspotHook.default_conn_name,
        lytics_conn_id: str = "lytics_default",
        import_contacts: bool = True,
        import_events: bool = True,
        contact_properties: Sequence[str] = DEFAULT_PROPERTIES,
        initial_since: str = DEFAULT_SINCE,
        contacts_stream: str = CONTACTS_STREAM,
        activity_stream: str = ACTIVITY_STREAM,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not import_contacts and not import_events:
            raise ValueError("select contacts, events or both to import (import_contacts / import_events)")
        self.job_id = job_id
        self.hubspot_conn_id = hubspot_conn_id
        self.lytics_conn_id = lytics_conn_id
        self.import_contacts = import_contacts
        self.import_events = import_events
        self.contact_properties = list(contact_properties)
        self.initial_since = initial_since
        self.contacts_stream = contacts_stream
        self.activity_stream = activity_stream

    def execute(self, context: Context) -> dict[str, Any]:
        from lytics_provider.hooks.lytics import LyticsHook

        params = context.get("params") or {}
        dry_run, full = as_bool(params.get("dry_run")), as_bool(params.get("full_refresh"))
        folder = run_dir(self.job_id, context["run_id"])
        window = FileCheckpoint(folder / "hubspot_window.json")
        until = window.load()
        if until is None:
            until = int(time.time() * 1000)
            window.save(until)
        first = to_ms(self.initial_since)
        hook = HubspotHook(self.hubspot_conn_id)
        lytics = LyticsHook(self.lytics_conn_id)
        report: dict[str, Any] = {"until": until, "dry_run": dry_run}
        if self.import_contacts:
            report["contacts"] = self._contacts(hook, lytics, first if full else None, until, dry_run)
        if self.import_events:
            cursor = FileCheckpoint(folder / "hubspot_events_cursor.json")
            report["events"] = self._events(hook, lytics, first if full else None, until, cursor, dry_run)
        report["hubspot_calls"] = hook.calls
        if dry_run:
            self.log.info("Dry run: checkpoints not moved. Report: %s", report)
            return report
        JobState(self.job_id).update(last_run_id=context["run_id"], last_report=report)
        self.log.info("Imported. Report: %s", report)
        return report

    def _contacts(
        self, hook: HubspotHook, lytics: Any, since: int | None, until: int, dry_run: bool
    ) -> dict[str, Any]:
        mark = StateCheckpoint(self.job_id, "contacts_since_ms")
        start = since if since is not None else int(mark.load() or to_ms(self.initial_since))
        writer = StreamWriter(
            lytics, self.contacts_stream, dryrun=dry_run, on_ack=None if dry_run else mark.save
        )
        read = 0
        properties = list(dict.fromkeys(["email", "lastmodifieddate", *self.contact_properties]))
        for page in hook.iter_modified_contacts(start, until, properties):
            writer.extend(contact_record(c) for c in page)
            writer.flush(position=max(int(c["properties"]["lastmodifieddate"]) for c in page))
            read += len(page)
        if not dry_run:
            mark.save(until)
        return {"since_ms": start, "read": read, "accepted": writer.accepted, "rejected": writer.rejected}

    def _events(
        self,
        hook: HubspotHook,
        lytics: Any,
        since: int | None,
        until: int,
        cursor: FileCheckpoint,
        dry_run: bool,
    ) -> dict[str, Any]:
        mark = StateCheckpoint(self.job_id, "events_since_ms")
        start = since if since is not None else int(mark.load() or to_ms(self.initial_since))
        resume = None if dry_run else cursor.load()
        writer = StreamWriter(
            lytics, self.activity_stream, timestamp_field="ts", dryrun=dry_run,
            on_ack=None if dry_run else cursor.save,
        )  # fmt: skip
        read = 0
        pages = [] if resume == "end" else hook.iter_email_event_pages(start, until, offset=resume)
        for events, following in pages:
            writer.extend(event_record(e) for e in events)
            writer.flush(position=following or "end")
            read += len(events)
        if not dry_run:
            mark.save(until)
            cursor.clear()
        return {
            "since_ms": start,
            "resumed_at": resume,
            "read": read,
            "accepted": writer.accepted,
            "rejected": writer.rejected,
        }
