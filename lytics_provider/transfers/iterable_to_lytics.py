"""Import Audiences & Activity Data: Iterable users and message events into five Lytics streams.

Each run reads what changed since the last successful run, up to the run's start time (fixed for
the run, so a retry reads the same window), through Iterable's Export API: users updated in the
window into ``iterable_users``, and the window's email, in-app, push and SMS events into
``iterable_activity``, ``iterable_in_app_activity``, ``iterable_push_activity`` and
``iterable_sms_activity``, one export per data type (``dataTypeName``).

An export answers the whole window in one response, so each one is saved in the run folder first
(a retry reads the saved file, never a second export) and sent to Lytics in pages of
``page_size`` records. After Lytics acknowledged a page, the next page's position (data type and
record offset) is saved, so a retried task continues after it; the window's end becomes the
stream's next start once every page was acknowledged. A dry run reads, sends with Lytics'
``dryrun`` and moves nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

from lytics_provider.hooks.iterable import IterableHook
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.windowed_import import ImportWindow, Page, WindowedImportOperator

DEFAULT_SINCE = "2000-01-01"
DEFAULT_PAGE_SIZE = 1000
STREAMS = {
    "users": "iterable_users",
    "activity": "iterable_activity",
    "in_app_activity": "iterable_in_app_activity",
    "push_activity": "iterable_push_activity",
    "sms_activity": "iterable_sms_activity",
}
"""The job's stream names -> the Lytics streams the seed names."""
DATA_TYPES: dict[str, tuple[str, ...]] = {
    "users": ("user",),
    "activity": (
        "emailSend", "emailOpen", "emailClick", "emailBounce", "emailComplaint", "emailSubscribe",
        "emailUnSubscribe", "hostedUnsubscribeClick",
    ),
    "in_app_activity": ("inAppSend", "inAppOpen", "inAppClick", "inAppClose", "inAppDelete", "inAppDelivery"),
    "push_activity": ("pushSend", "pushOpen", "pushBounce", "pushUninstall"),
    "sms_activity": ("smsSend", "smsBounce", "smsClick", "smsReceived"),
}  # fmt: skip
"""The Export API data types each stream reads by default."""
Convert = Callable[[dict[str, Any], str], dict[str, Any]]
"""A record builder: an exported line and its data type -> the Lytics record."""
RENAMED = {
    "userId": "iterable_user_id",
    "campaignId": "campaign_id",
    "templateId": "template_id",
    "messageId": "message_id",
    "messageTypeId": "message_type_id",
    "channelId": "channel_id",
}


def export_time(moment: str | int) -> str:
    """``yyyy-MM-dd HH:mm:ss +00:00`` of epoch milliseconds or an ISO date / date-time (UTC when it
    has no offset)."""
    if isinstance(moment, int):
        parsed = datetime.fromtimestamp(moment / 1000, UTC)
    else:
        parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return parsed.strftime("%Y-%m-%d %H:%M:%S +00:00")


def user_record(item: dict[str, Any], data_type: str) -> dict[str, Any]:
    """An ``iterable_users`` record: every field of the user (custom fields included), the email in
    lower case and ``userId`` as ``iterable_user_id``."""
    record: dict[str, Any] = {}
    for name, value in item.items():
        if value in (None, "", {}, []):
            continue
        record[RENAMED.get(name, name)] = str(value).strip().lower() if name == "email" else value
    return record


def event_record(item: dict[str, Any], data_type: str) -> dict[str, Any]:
    """An activity record: the event's fields, ``event`` (the data type, ``emailOpen``), the email in
    lower case and ``ts`` (the event's ``createdAt``)."""
    record = user_record(item, data_type)
    record["event"] = data_type
    if item.get("createdAt"):
        record["ts"] = record.pop("createdAt")
    return record


class IterableToLyticsOperator(WindowedImportOperator):
    """Import Iterable users and events of the window since the last run; see the module docstring.

    :param job_id: the job's id (checkpoints, run folder).
    :param iterable_conn_id: the ``iterable`` connection.
    :param lytics_conn_id: the Lytics connection.
    :param streams: the streams read (``users``, ``activity``, ``in_app_activity``,
        ``push_activity``, ``sms_activity``).
    :param event_types: data types read by an activity stream instead of its default ones.
    :param user_fields: the user fields exported (``onlyFields``; default every field).
    :param initial_since: where the first run starts (ISO date).
    :param page_size: records per page sent to Lytics (one checkpoint each).
    """

    service = "iterable"

    def __init__(
        self,
        *,
        iterable_conn_id: str = IterableHook.default_conn_name,
        streams: Sequence[str] = tuple(STREAMS),
        event_types: Mapping[str, Sequence[str]] | None = None,
        user_fields: Sequence[str] | None = None,
        initial_since: str = DEFAULT_SINCE,
        page_size: int = DEFAULT_PAGE_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(initial_since=initial_since, **kwargs)
        keep_arguments(self, locals())
        unknown = sorted(set(streams) - set(STREAMS))
        if not streams or unknown:
            raise ValueError(f"streams must name some of {', '.join(STREAMS)} (unknown: {unknown})")
        self.streams = list(streams)
        self.data_types = {**DATA_TYPES, **{k: tuple(v) for k, v in (event_types or {}).items()}}

    def make_hook(self) -> IterableHook:
        return IterableHook(self.iterable_conn_id)

    def window_end(self, now_ms: int) -> str:
        return export_time(now_ms)

    def import_streams(self, run: ImportWindow) -> dict[str, Any]:
        report: dict[str, Any] = {}
        for name in self.streams:
            users = name == "users"
            export = _Export(
                run.hook, run.folder, name, self.data_types[name], run.until,
                tuple(self.user_fields or ()) if users else (), self.page_size,
            )  # fmt: skip
            report[name] = self.cursor_stream(
                run,
                name,
                STREAMS[name],
                partial(export.pages, user_record if users else event_record),
                first=export_time(self.initial_since),
                mark_key=f"{name}_since",
                timestamp_field=None if users else "ts",
            )
        return report


class _Export:
    """One stream's exports of a window, saved in the run folder and read in pages.

    :param hook: the Iterable hook.
    :param folder: the run folder.
    :param name: the stream's name in the job.
    :param data_types: the data types exported, in order.
    :param until: the window's end.
    :param only_fields: the fields exported (empty: every field).
    :param page_size: records per page.
    """

    def __init__(
        self,
        hook: IterableHook,
        folder: Path,
        name: str,
        data_types: Sequence[str],
        until: str,
        only_fields: Sequence[str],
        page_size: int,
    ) -> None:
        self.hook, self.folder, self.name, self.until = hook, folder, name, until
        self.data_types, self.only_fields, self.page_size = list(data_types), only_fields, page_size

    def saved(self, data_type: str, since: str) -> Path:
        """The run folder's file of ``data_type``'s export, exported when it is not there yet."""
        path = self.folder / f"iterable_{self.name}_{data_type}.jsonl"
        if not path.exists():
            self.hook.export_to_file(data_type, since, self.until, path, self.only_fields)
        return path

    def pages(self, convert: Convert, since: str, resume: str | None) -> Iterator[Page]:
        """The pages from ``resume`` (``<data type>:<offset>``; ``None``: the first) on, each with
        the next page's position (``None`` after the last); a data type's file is removed once its
        last page was acknowledged."""
        kind, _, offset = (resume or f"{self.data_types[0]}:0").partition(":")
        start = self.data_types.index(kind)
        for index, data_type in enumerate(self.data_types[start:], start):
            following = self.data_types[index + 1] + ":0" if index + 1 < len(self.data_types) else None
            path = self.saved(data_type, since)
            skip = int(offset) if index == start else 0
            with path.open(encoding="utf-8") as lines:
                chunks = _chunks(islice(lines, skip, None), self.page_size)
                position, page = skip, next(chunks, None)
                while page is not None:
                    position += len(page)
                    upcoming = next(chunks, None)
                    records = [convert(json.loads(line), data_type) for line in page]
                    yield records, (f"{data_type}:{position}" if upcoming else following)
                    page = upcoming
            path.unlink(missing_ok=True)


def _chunks(lines: Iterator[str], size: int) -> Iterator[list[str]]:
    """``lines`` in lists of ``size`` (the last one shorter)."""
    while chunk := list(islice(lines, size)):
        yield chunk
