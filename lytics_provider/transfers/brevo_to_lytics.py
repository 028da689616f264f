"""Import Users & Activity: Brevo contacts of the chosen lists into ``brevo_users``, transactional
email events into ``brevo_activity`` and transactional SMS events into ``brevo_sms_activity``.

Each run reads what changed since the last successful run, up to the run's start time (fixed for
the run, so a retry reads the same window):

* **users**: each chosen list's contacts modified since the watermark
  (``GET /v3/contacts/lists/{id}/contacts``, ``modifiedSince``, oldest first, ``limit``/``offset``
  pages); a contact in several chosen lists is sent once, with the first of them; contacts
  modified after the window's end wait for the next run;
* **activity** and **sms_activity**: the transactional email events (``/v3/smtp/statistics/events``)
  and SMS events (``/v3/transactionalSMS/statistics/events``) of the window, asked by date ranges
  of at most 90 days (Brevo's limit) and kept when their ``date`` falls in the window. A first run
  (or a full refresh) reads at most the window's last 90 days, one date range: these endpoints
  allow only 300 (email) and 100 (SMS) calls an hour.

A stream's cursor is ``<segment>:<offset>`` (a list, or a date range, and the next page's offset),
saved in the run folder once Lytics acknowledged the page, so a retried task continues after the
last accepted page; the window's end becomes the stream's watermark once every page was
acknowledged. A dry run reads, sends with Lytics' ``dryrun`` and moves nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

from lytics_provider.hooks.brevo import EMAIL_EVENTS, EVENT_RANGE_DAYS, SMS_EVENTS, BrevoHook
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.windowed_import import ImportWindow, Page, WindowedImportOperator

USERS_STREAM = "brevo_users"
ACTIVITY_STREAM = "brevo_activity"
SMS_STREAM = "brevo_sms_activity"
DEFAULT_SINCE = "2000-01-01"
RENAMED = {"FIRSTNAME": "first_name", "LASTNAME": "last_name", "SMS": "phone"}

#: The pages of one segment from an offset: ``(items, next offset or None)``.
SegmentFetch = Callable[[Any, int], Iterator[tuple[list[dict[str, Any]], int | None]]]


def epoch_ms(moment: str) -> int:
    """Epoch milliseconds of an ISO date or date-time (UTC when it has no offset)."""
    parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return int((parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp() * 1000)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def user_record(contact: dict[str, Any]) -> dict[str, Any]:
    """A ``brevo_users`` record: ``brevo_id``, ``email``, list ids, blocklist flags and attributes
    (``FIRSTNAME`` -> ``first_name``, ``LASTNAME`` -> ``last_name``, ``SMS`` -> ``phone``, others
    lower-cased)."""
    record: dict[str, Any] = {
        "brevo_id": str(contact.get("id")),
        "email": str(contact.get("email") or "").strip().lower() or None,
        "email_blacklisted": contact.get("emailBlacklisted"),
        "sms_blacklisted": contact.get("smsBlacklisted"),
        "list_ids": contact.get("listIds"),
        "created_at": contact.get("createdAt"),
        "modified_at": contact.get("modifiedAt"),
    }
    for name, value in (contact.get("attributes") or {}).items():
        if value not in (None, ""):
            record[RENAMED.get(name, name.lower())] = value
    return {k: v for k, v in record.items() if v is not None}


def event_record(event: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    """An event record: ``event``, ``ts`` and ``event_id`` (message, event and time), and ``fields``
    (Brevo name -> record name) when present."""
    record: dict[str, Any] = {
        "event_id": f"{event.get('messageId')}/{event.get('event')}/{event.get('date')}",
        "event": event.get("event"),
        "ts": event.get("date"),
    }
    for source, target in fields.items():
        if event.get(source) not in (None, ""):
            record[target] = event[source]
    if "email" in record:
        record["email"] = str(record["email"]).strip().lower()
    return record


EMAIL_FIELDS = {
    "email": "email", "messageId": "message_id", "subject": "subject", "tag": "tag",
    "templateId": "template_id", "reason": "reason", "link": "url", "ip": "ip", "from": "from",
}  # fmt: skip
SMS_FIELDS = {
    "phoneNumber": "phone",
    "messageId": "message_id",
    "tag": "tag",
    "reason": "reason",
    "reply": "reply",
}


def date_ranges(since_ms: int, until_ms: int) -> list[tuple[str, str]]:
    """The days of ``[since_ms, until_ms)`` as ``(startDate, endDate)`` ranges of at most 90 days."""
    first = datetime.fromtimestamp(since_ms / 1000, UTC).date()
    last = datetime.fromtimestamp((until_ms - 1) / 1000, UTC).date()
    ranges: list[tuple[str, str]] = []
    start: date = first
    while start <= last:
        end = min(start + timedelta(days=EVENT_RANGE_DAYS - 1), last)
        ranges.append((start.isoformat(), end.isoformat()))
        start = end + timedelta(days=1)
    return ranges


def one_range_before(until_ms: int) -> int:
    """The start (epoch ms, UTC midnight) of the one 90-day date range that ends with ``until_ms``."""
    last = datetime.fromtimestamp((until_ms - 1) / 1000, UTC).date()
    start = datetime.combine(last - timedelta(days=EVENT_RANGE_DAYS - 1), datetime.min.time(), UTC)
    return int(start.timestamp() * 1000)


def segment_pages(
    segments: Sequence[Any],
    fetch: SegmentFetch,
    convert: Callable[[int, dict[str, Any]], dict[str, Any] | None],
    resume: str | None,
) -> Iterator[Page]:
    """The records of every page of every segment from the ``<segment>:<offset>`` cursor ``resume``
    on, each with the next page's cursor (None after the last page of the last segment).

    :param segments: what each series of pages reads (a list id, a date range).
    :param fetch: the pages of a segment from an offset.
    :param convert: the record of an item of the segment at an index; None leaves it out.
    :param resume: the cursor to start from (None: the first page).
    """
    index, offset = (int(part) for part in resume.split(":")) if resume else (0, 0)
    for at in range(index, len(segments)):
        for items, following in fetch(segments[at], offset if at == index else 0):
            if following is not None:
                cursor: str | None = f"{at}:{following}"
            else:
                cursor = f"{at + 1}:0" if at + 1 < len(segments) else None
            records = [convert(at, item) for item in items]
            yield [r for r in records if r is not None], cursor


class BrevoToLyticsOperator(WindowedImportOperator):
    """Import Brevo contacts of lists and transactional email and SMS events changed since the last
    run; see the module docstring.

    :param job_id: the job's id (checkpoints, run folder).
    :param lists: the Brevo lists (ids or exact names) whose contacts are imported.
    :param brevo_conn_id: the ``brevo`` connection.
    :param lytics_conn_id: the Lytics connection.
    :param import_activity: read transactional email events into ``activity_stream``.
    :param import_sms_activity: read transactional SMS events into ``sms_stream``.
    :param initial_since: where the first run starts (ISO date).
    :param users_stream: the Lytics stream of contacts.
    :param activity_stream: the Lytics stream of email events.
    :param sms_stream: the Lytics stream of SMS events.
    """

    service = "brevo"

    def __init__(
        self,
        *,
        lists: Sequence[str],
        brevo_conn_id: str = BrevoHook.default_conn_name,
        import_activity: bool = True,
        import_sms_activity: bool = True,
        initial_since: str = DEFAULT_SINCE,
        users_stream: str = USERS_STREAM,
        activity_stream: str = ACTIVITY_STREAM,
        sms_stream: str = SMS_STREAM,
        **kwargs: Any,
    ) -> None:
        super().__init__(initial_since=initial_since, **kwargs)
        keep_arguments(self, locals())
        if not lists:
            raise ValueError("name at least one Brevo list to import (lists)")
        self.lists = list(lists)

    def make_hook(self) -> BrevoHook:
        return BrevoHook(self.brevo_conn_id)

    def import_streams(self, run: ImportWindow) -> dict[str, Any]:
        first = epoch_ms(self.initial_since)
        list_ids = [int(run.hook.resolve_list(ref)["id"]) for ref in self.lists]
        report: dict[str, Any] = {
            "lists": list_ids,
            "users": self.cursor_stream(
                run, "users", self.users_stream, partial(_user_pages, run.hook, list_ids, run.until),
                first=first, mark_key="users_since_ms", since_key="since_ms",
            ),
        }  # fmt: skip
        events = (
            (self.import_activity, "activity", self.activity_stream, EMAIL_EVENTS, EMAIL_FIELDS),
            (self.import_sms_activity, "sms_activity", self.sms_stream, SMS_EVENTS, SMS_FIELDS),
        )
        for wanted, name, stream, path, fields in events:
            if wanted:
                report[name] = self.cursor_stream(
                    run, name, stream, partial(_event_pages, run.hook, path, fields, run.until),
                    first=max(first, one_range_before(run.until)), mark_key=f"{name}_since_ms",
                    since_key="since_ms", timestamp_field="ts",
                )  # fmt: skip
        return report


def _user_pages(
    hook: BrevoHook, list_ids: list[int], until: int, since: int, resume: str | None
) -> Iterator[Page]:
    """The ``brevo_users`` records of each page of each list, modified in ``[since, until)``."""
    modified_since = iso(since - 1)

    def convert(at: int, contact: dict[str, Any]) -> dict[str, Any] | None:
        modified = epoch_ms(str(contact.get("modifiedAt") or contact.get("createdAt")))
        earlier = set(list_ids[:at]) & set(contact.get("listIds") or [])
        return user_record(contact) if since <= modified < until and not earlier else None

    def fetch(list_id: int, offset: int) -> Iterator[tuple[list[dict[str, Any]], int | None]]:
        return hook.list_contact_pages(list_id, modified_since, offset)

    return segment_pages(list_ids, fetch, convert, resume)


def _event_pages(
    hook: BrevoHook, path: str, fields: dict[str, str], until: int, since: int, resume: str | None
) -> Iterator[Page]:
    """The records of each page of ``path``'s events dated in ``[since, until)``."""

    def convert(at: int, event: dict[str, Any]) -> dict[str, Any] | None:
        return event_record(event, fields) if since <= epoch_ms(str(event.get("date"))) < until else None

    def fetch(days: tuple[str, str], offset: int) -> Iterator[tuple[list[dict[str, Any]], int | None]]:
        return hook.event_pages(path, *days, offset=offset)

    return segment_pages(date_ranges(since, until), fetch, convert, resume)
