"""Import Subscriber and Activity: Marketing Cloud subscribers into ``sfmc_subscribers``, tracking
events into ``sfmc_events``.

Marketing Cloud publishes both only through its SOAP API's ``Retrieve`` (its REST API has no
general export of subscribers or tracking events). Each run reads what changed since the last
successful run, up to the run's start time (fixed for the run, so a retry reads the same window):

* **subscribers** (``import_subscribers``): ``Subscriber`` objects created, or unsubscribed, in the
  window (``CreatedDate`` or ``UnsubscribedDate``; the object has no modification date to filter on);
* **activity** (``import_activity``): each selected tracking event object (``event_types``:
  ``SentEvent``, ``OpenEvent``, ``ClickEvent``, ``BounceEvent``, ``UnsubEvent``, ...) whose
  ``EventDate`` is in the window, one after the other, each with its own watermark.

A window is ``since <= date < until``, read in pages of at most 2,500 results that follow each
other through the answer's ``RequestID`` (``ContinueRequest``). Marketing Cloud publishes neither
an order of the results nor whether a ``RequestID`` can be read again, so a retried task reads the
window again from its start: the keys of the records Lytics acknowledged (``event_id``,
``subscriber_key``) are appended to a file in the run folder after each acknowledged page, and a
retry skips them. The window's end becomes the next run's start once every page of the object
was acknowledged. A dry run reads, sends with Lytics' ``dryrun`` and moves nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from lytics_provider.hooks.sfmc import JoinedFilter, SfmcHook, date_window, server_time_to_utc
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.windowed_import import ImportWindow, Page, WindowedImportOperator

SUBSCRIBERS_STREAM = "sfmc_subscribers"
EVENTS_STREAM = "sfmc_events"
DEFAULT_SINCE = "2000-01-01"
SUBSCRIBER_FIELDS = {
    "SubscriberKey": "subscriber_key",
    "EmailAddress": "email",
    "ID": "sfmc_subscriber_id",
    "Status": "status",
    "EmailTypePreference": "email_type_preference",
    "CreatedDate": "created_date",
    "UnsubscribedDate": "unsubscribed_date",
    "Client.ID": "sfmc_mid",
}
EVENT_FIELDS = {
    "SubscriberKey": "subscriber_key",
    "SendID": "send_id",
    "BatchID": "batch_id",
    "EventType": "event_type",
    "TriggeredSendDefinitionObjectID": "triggered_send_id",
    "Client.ID": "sfmc_mid",
}
EXTRA_EVENT_FIELDS: dict[str, dict[str, str]] = {
    "SentEvent": {"ListID": "list_id"},
    "ClickEvent": {"URL": "url", "URLID": "url_id"},
    "BounceEvent": {
        "BounceCategory": "bounce_category",
        "BounceType": "bounce_type",
        "SMTPCode": "smtp_code",
        "SMTPReason": "smtp_reason",
    },
}
EVENT_NAMES = {
    "SentEvent": "sent",
    "OpenEvent": "open",
    "ClickEvent": "click",
    "BounceEvent": "bounce",
    "UnsubEvent": "unsubscribe",
    "ForwardedEmailEvent": "forward",
    "ForwardedEmailOptInEvent": "forward_opt_in",
    "SurveyEvent": "survey",
}
"""The tracking event objects that can be read, with their ``event`` name in ``sfmc_events``."""
DEFAULT_EVENT_TYPES = ("SentEvent", "OpenEvent", "ClickEvent", "BounceEvent", "UnsubEvent")
DATES = ("CreatedDate", "UnsubscribedDate", "EventDate")


def soap_date(ms: int) -> str:
    """Epoch milliseconds as a SOAP filter date in UTC, to the second."""
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _renamed(result: dict[str, str], names: dict[str, str]) -> dict[str, Any]:
    """The ``names`` found in ``result`` under their Lytics names; dates in UTC."""
    return {
        target: server_time_to_utc(result[source]) if source in DATES else result[source]
        for source, target in names.items()
        if result.get(source)
    }


def subscriber_record(result: dict[str, str]) -> dict[str, Any]:
    """A ``sfmc_subscribers`` record: the subscriber key, email (lower-cased), status and dates."""
    record = _renamed(result, SUBSCRIBER_FIELDS)
    if "email" in record:
        record["email"] = record["email"].strip().lower()
    return record


def event_record(object_type: str, result: dict[str, str]) -> dict[str, Any]:
    """A ``sfmc_events`` record; its ``event_id`` is a digest of the object type and its properties
    (tracking events answer no id of their own), the same every time the event is read."""
    record = {
        "event": EVENT_NAMES[object_type],
        "ts": server_time_to_utc(result["EventDate"]),
        **_renamed(result, {**EVENT_FIELDS, **EXTRA_EVENT_FIELDS.get(object_type, {})}),
    }
    identity = "\x1f".join([object_type, *(f"{k}={result[k]}" for k in sorted(result))])
    return {"event_id": hashlib.sha256(identity.encode()).hexdigest()[:32], **record}


def event_properties(object_type: str) -> list[str]:
    """The properties a ``Retrieve`` of ``object_type`` asks for."""
    return ["EventDate", *EVENT_FIELDS, *EXTRA_EVENT_FIELDS.get(object_type, {})]


class AcknowledgedKeys:
    """The keys of the records Lytics acknowledged in this run, one JSON line per page.

    :param path: the file in the run folder.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> set[str]:
        """Every key acknowledged so far."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return set()
        return {key for line in lines if line.strip() for key in json.loads(line)}

    def add(self, keys: list[str]) -> None:
        """Append one acknowledged page's keys."""
        if keys:
            with self.path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(keys) + "\n")


class SfmcToLyticsOperator(WindowedImportOperator):
    """Import Marketing Cloud subscribers and tracking events changed since the last run; see the
    module docstring.

    :param job_id: the job's id (checkpoints, run folder).
    :param sfmc_conn_id: the ``sfmc`` connection.
    :param lytics_conn_id: the Lytics connection.
    :param import_subscribers: read subscribers into ``subscribers_stream``.
    :param import_activity: read tracking events into ``events_stream``.
    :param event_types: the tracking event objects read (keys of :data:`EVENT_NAMES`).
    :param initial_since: where the first run starts (ISO date).
    :param subscribers_stream: the Lytics stream of subscribers.
    :param events_stream: the Lytics stream of tracking events.
    """

    service = "sfmc"

    def __init__(
        self,
        *,
        sfmc_conn_id: str = SfmcHook.default_conn_name,
        import_subscribers: bool = True,
        import_activity: bool = True,
        event_types: Sequence[str] = DEFAULT_EVENT_TYPES,
        initial_since: str = DEFAULT_SINCE,
        subscribers_stream: str = SUBSCRIBERS_STREAM,
        events_stream: str = EVENTS_STREAM,
        **kwargs: Any,
    ) -> None:
        super().__init__(initial_since=initial_since, **kwargs)
        keep_arguments(self, locals())
        self.require_a_stream(import_subscribers=import_subscribers, import_activity=import_activity)
        unknown = sorted(set(event_types) - set(EVENT_NAMES))
        if unknown:
            raise ValueError(f"unknown event_types {unknown}; choose among {sorted(EVENT_NAMES)}")
        self.event_types = list(event_types)

    def make_hook(self) -> SfmcHook:
        return SfmcHook(self.sfmc_conn_id)

    def window_end(self, now_ms: int) -> str:
        return soap_date(now_ms)

    def import_streams(self, run: ImportWindow) -> dict[str, Any]:
        first = self.initial_since if "T" in self.initial_since else f"{self.initial_since}T00:00:00Z"
        report: dict[str, Any] = {}
        if self.import_subscribers:
            report["subscribers"] = self.cursor_stream(
                run,
                "subscribers",
                self.subscribers_stream,
                partial(_subscriber_pages, run.hook, run.until, self._keys(run, "subscribers")),
                first=first,
                mark_key="subscribers_since",
            )
        if self.import_activity:
            report["activity"] = {
                object_type: self.cursor_stream(
                    run,
                    object_type,
                    self.events_stream,
                    partial(_event_pages, run.hook, run.until, object_type, self._keys(run, object_type)),
                    first=first,
                    mark_key=f"{object_type}_since",
                    timestamp_field="ts",
                )
                for object_type in self.event_types
            }
        return report

    def _keys(self, run: ImportWindow, name: str) -> AcknowledgedKeys | None:
        """The acknowledged keys of one object in this run (none kept in a dry run)."""
        return None if run.dry_run else AcknowledgedKeys(run.folder / f"{self.service}_{name}_sent.jsonl")


def _pages(
    hook: SfmcHook,
    object_type: str,
    properties: list[str],
    where: JoinedFilter,
    convert: Callable[[dict[str, str]], dict[str, Any]],
    key: str,
    sent: AcknowledgedKeys | None,
) -> Iterator[Page]:
    """The records of each page not acknowledged by an earlier try; each page's position is its
    number, ``None`` after the last page.

    The pages are posted one after the other and the generator resumes only after Lytics
    acknowledged the page it yielded: that is when the page's keys are written to ``sent``.
    """
    skip = sent.load() if sent is not None else set()
    for number, (results, following) in enumerate(hook.retrieve_pages(object_type, properties, where), 1):
        records = [r for r in map(convert, results) if r[key] not in skip]
        yield records, number if following else None
        if sent is not None:
            sent.add([r[key] for r in records])


def _subscriber_pages(
    hook: SfmcHook, until: str, sent: AcknowledgedKeys | None, since: str, resume: int | None
) -> Iterator[Page]:
    """Subscribers created or unsubscribed in ``[since, until)``, page by page (``resume``, the
    engine's page cursor, is not needed: a retry reads the window again and skips ``sent``)."""
    where = JoinedFilter(
        date_window("CreatedDate", since, until), "OR", date_window("UnsubscribedDate", since, until)
    )
    return _pages(
        hook, "Subscriber", list(SUBSCRIBER_FIELDS), where, subscriber_record, "subscriber_key", sent
    )


def _event_pages(
    hook: SfmcHook,
    until: str,
    object_type: str,
    sent: AcknowledgedKeys | None,
    since: str,
    resume: int | None,
) -> Iterator[Page]:
    """The tracking events of ``object_type`` in ``[since, until)``, page by page (``resume`` is not
    needed: a retry reads the window again and skips ``sent``)."""
    where = date_window("EventDate", since, until)
    convert = partial(event_record, object_type)
    return _pages(hook, object_type, event_properties(object_type), where, convert, "event_id", sent)
