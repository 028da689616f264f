"""Import Audiences & Activity Data: Marketo leads into ``mo_user`` and activities into ``mo_activity``.

Each run reads what changed since the last successful run, up to the run's start time (fixed for
the run, so a retry reads the same window), through Marketo's Bulk Extract: leads whose
``updatedAt`` (or, where the account lacks that filter, ``createdAt``) falls in the window, and
activities created in it. Marketo takes at most 31 days per job, so the window is cut into
spans of 31 days, one job each.

A job's id is saved in the run folder as soon as it is created, so a retried task reattaches to it
instead of starting another; its CSV is saved in the run folder before anything is sent (a retry
reads the saved file) and sent to Lytics in pages of ``page_size`` rows. After Lytics acknowledged
a page, the next page's position (span and row) is saved, so a retried task continues after it; a
span's end becomes the stream's next start once its every page was acknowledged, and the window's
end once every span's was.

Marketo limits the Bulk Extract to 500 MB of files a day by default: when it is spent Marketo
refuses new jobs (1029) and the task stops saying so; what was acknowledged stays acknowledged, and
the next run after the reset (or the task run again) continues at the span where it stopped. A dry run reads,
sends with Lytics' ``dryrun`` and moves nothing.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

from lytics_provider.files.ingest import FileCheckpoint, StateCheckpoint
from lytics_provider.hooks.marketo import MarketoHook
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.windowed_import import ImportWindow, Page, WindowedImportOperator

STREAMS = {"leads": "mo_user", "activities": "mo_activity"}
"""What is extracted -> the Lytics stream the seed names."""
DEFAULT_LEAD_FIELDS = ("id", "email", "firstName", "lastName", "company", "title", "createdAt", "updatedAt")
SPAN = timedelta(days=31)
"""The longest date range of one Bulk Extract job."""
Convert = Callable[[dict[str, str]], dict[str, Any]]


def utc(moment: str) -> datetime:
    """An ISO date or date-time (UTC when it has no offset) as an aware datetime."""
    parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def stamp(at: datetime) -> str:
    """``at`` as Marketo's filters take it: ISO 8601 in UTC to the second (``2024-01-31T00:00:00Z``)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def spans(since: str, until: str) -> list[tuple[str, str]]:
    """``[since, until)`` cut into consecutive ranges of at most 31 days."""
    start, end = utc(since), utc(until)
    ranges = []
    while start < end:
        stop = min(start + SPAN, end)
        ranges.append((stamp(start), stamp(stop)))
        start = stop
    return ranges


def lead_record(row: dict[str, str]) -> dict[str, Any]:
    """A ``mo_user`` record: the lead's non-empty fields, the email in lower case."""
    record: dict[str, Any] = {name: value for name, value in row.items() if value not in (None, "")}
    if "email" in record:
        record["email"] = record["email"].strip().lower()
    return record


def activity_record(row: dict[str, str]) -> dict[str, Any]:
    """A ``mo_activity`` record: the activity's columns, its ``attributes`` read as JSON."""
    record = lead_record(row)
    with suppress(KeyError, ValueError):
        record["attributes"] = json.loads(record["attributes"])
    return record


class MarketoToLyticsOperator(WindowedImportOperator):
    """Import Marketo leads and activities of the window since the last run; see the module docstring.

    :param job_id: the job's id (checkpoints, run folder).
    :param marketo_conn_id: the ``marketo`` connection.
    :param lytics_conn_id: the Lytics connection.
    :param import_leads: read leads into ``mo_user``.
    :param import_activities: read activities into ``mo_activity``.
    :param lead_filter: the leads' filter field, ``updatedAt`` or ``createdAt``.
    :param lead_fields: the lead fields extracted (REST API names).
    :param activity_type_ids: the activity types extracted (default every type).
    :param initial_since: where the first run starts (ISO date).
    :param page_size: rows per page sent to Lytics (one checkpoint each).
    :param poll_interval: seconds between reads of a job's status.
    :param export_timeout: the longest wait for one job, in seconds.
    """

    service = "marketo"

    def __init__(
        self,
        *,
        marketo_conn_id: str = "marketo_default",
        import_leads: bool = True,
        import_activities: bool = True,
        lead_filter: str = "updatedAt",
        lead_fields: Sequence[str] = DEFAULT_LEAD_FIELDS,
        activity_type_ids: Sequence[int] | None = None,
        initial_since: str = "2000-01-01",
        page_size: int = 1000,
        poll_interval: float = 30.0,
        export_timeout: float = 6 * 3600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(initial_since=initial_since, **kwargs)
        keep_arguments(self, locals())
        self.require_a_stream(import_leads=import_leads, import_activities=import_activities)

    def make_hook(self) -> MarketoHook:
        return MarketoHook(self.marketo_conn_id)

    def window_end(self, now_ms: int) -> str:
        return stamp(datetime.fromtimestamp(now_ms / 1000, UTC))

    def request(self, kind: str, start: str, end: str) -> dict[str, Any]:
        """The Bulk Extract request of ``kind`` for ``[start, end)``."""
        if kind == "leads":
            return {
                "format": "CSV",
                "fields": list(self.lead_fields),
                "filter": {self.lead_filter: {"startAt": start, "endAt": end}},
            }
        where: dict[str, Any] = {"createdAt": {"startAt": start, "endAt": end}}
        if self.activity_type_ids:
            where["activityTypeIds"] = [int(i) for i in self.activity_type_ids]
        return {"format": "CSV", "filter": where}

    def import_streams(self, run: ImportWindow) -> dict[str, Any]:
        report: dict[str, Any] = {}
        selected = {"leads": self.import_leads, "activities": self.import_activities}
        for kind, convert in (("leads", lead_record), ("activities", activity_record)):
            if not selected[kind]:
                continue
            extract = _Extract(self, run, kind)
            report[kind] = self.cursor_stream(
                run,
                kind,
                STREAMS[kind],
                partial(extract.pages, convert),
                first=stamp(utc(self.initial_since)),
                mark_key=f"{kind}_since",
                timestamp_field="activityDate" if kind == "activities" else None,
            )
            report[kind]["export_bytes"] = extract.downloaded
        return report


class _Extract:
    """One stream's Bulk Extract jobs over a window, saved in the run folder and read in pages.

    Once a span's last page was acknowledged, the stream's watermark moves to the span's end, so a
    later run stopped by the export quota begins where this one stopped.

    :param operator: the import (its job requests, page size and waits).
    :param run: the run (hook, folder, window's end, dry run).
    :param kind: ``leads`` or ``activities``.
    """

    def __init__(self, operator: MarketoToLyticsOperator, run: ImportWindow, kind: str) -> None:
        self.operator, self.run, self.kind = operator, run, kind
        self.mark = StateCheckpoint(operator.job_id, f"{kind}_since")
        self.downloaded = 0

    def saved(self, start: str, end: str) -> Path:
        """The run folder's CSV of the span ``[start, end)``, extracted when it is not there yet (the
        job's id is saved once created, so a retry reattaches to it)."""
        stem = f"marketo_{self.kind}_{start.replace('-', '').replace(':', '')}"
        path = self.run.folder / f"{stem}.csv"
        if path.exists():
            return path
        job = FileCheckpoint(self.run.folder / f"{stem}_job.json")
        export_id = job.load()
        if export_id is None:
            export_id = self.run.hook.create_export(self.kind, self.operator.request(self.kind, start, end))
            job.save(export_id)
        hook, waits = self.run.hook, (self.operator.poll_interval, self.operator.export_timeout)
        hook.run_export(self.kind, export_id, *waits)
        self.downloaded += hook.download_export(self.kind, export_id, path)
        job.clear()
        return path

    def pages(self, convert: Convert, since: str, resume: str | None) -> Iterator[Page]:
        """The pages from ``resume`` (``<row>@<span start>``; ``None``: the first) on, each with the
        next page's position (``None`` after the last); a span's CSV is removed once it was sent."""
        ranges = spans(since, self.run.until)
        skip, _, begin = (resume or "").partition("@")
        ranges = [span for span in ranges if span[0] >= begin] if begin else ranges
        size = self.operator.page_size
        for index, (start, end) in enumerate(ranges):
            path = self.saved(start, end)
            row = int(skip) if index == 0 and skip else 0
            ahead = f"0@{ranges[index + 1][0]}" if index + 1 < len(ranges) else None
            with path.open(newline="", encoding="utf-8") as handle:
                rows = islice(csv.DictReader(handle), row, None)
                page = list(islice(rows, size))
                while page:
                    row += len(page)
                    upcoming = list(islice(rows, size))
                    yield [convert(item) for item in page], f"{row}@{start}" if upcoming else ahead
                    page = upcoming
            if not self.run.dry_run:
                self.mark.save(end)
            path.unlink(missing_ok=True)
