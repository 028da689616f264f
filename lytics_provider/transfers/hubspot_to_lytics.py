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

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from lytics_provider.files.ingest import StateCheckpoint, StreamWriter
from lytics_provider.hooks.hubspot import HubspotHook
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.windowed_import import ImportWindow, Page, WindowedImportOperator, send_pages

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


class HubspotToLyticsOperator(WindowedImportOperator):
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

    service = "hubspot"

    def __init__(
        self,
        *,
        hubspot_conn_id: str = HubspotHook.default_conn_name,
        import_contacts: bool = True,
        import_events: bool = True,
        contact_properties: Sequence[str] = DEFAULT_PROPERTIES,
        initial_since: str = DEFAULT_SINCE,
        contacts_stream: str = CONTACTS_STREAM,
        activity_stream: str = ACTIVITY_STREAM,
        **kwargs: Any,
    ) -> None:
        super().__init__(initial_since=initial_since, **kwargs)
        keep_arguments(self, locals())
        self.require_a_stream(import_contacts=import_contacts, import_events=import_events)
        self.contact_properties = list(contact_properties)

    def make_hook(self) -> HubspotHook:
        return HubspotHook(self.hubspot_conn_id)

    def import_streams(self, run: ImportWindow) -> dict[str, Any]:
        report: dict[str, Any] = {}
        if self.import_contacts:
            report["contacts"] = self._contacts(run)
        if self.import_events:
            report["events"] = self.cursor_stream(
                run,
                "events",
                self.activity_stream,
                partial(_event_pages, run.hook, run.until),
                first=to_ms(self.initial_since),
                mark_key="events_since_ms",
                since_key="since_ms",
                timestamp_field="ts",
                done="end",
            )
        return report

    def _contacts(self, run: ImportWindow) -> dict[str, Any]:
        mark = StateCheckpoint(self.job_id, "contacts_since_ms")
        first = to_ms(self.initial_since)
        start = first if run.full else int(mark.load() or first)
        writer = StreamWriter(
            run.lytics, self.contacts_stream, dryrun=run.dry_run, on_ack=None if run.dry_run else mark.save
        )
        properties = list(dict.fromkeys(["email", "lastmodifieddate", *self.contact_properties]))
        pages = (
            ([contact_record(c) for c in page], max(int(c["properties"]["lastmodifieddate"]) for c in page))
            for page in run.hook.iter_modified_contacts(start, run.until, properties)
        )
        read = send_pages(writer, pages)
        if not run.dry_run:
            mark.save(run.until)
        return {"since_ms": start, "read": read, "accepted": writer.accepted, "rejected": writer.rejected}


def _event_pages(hook: HubspotHook, until: int, since: int, offset: str | None) -> Iterator[Page]:
    """The ``hubspot_activity`` records of each page of email events, and the next page's offset."""
    for events, following in hook.iter_email_event_pages(since, until, offset=offset):
        yield [event_record(e) for e in events], following
