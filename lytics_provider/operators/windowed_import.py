"""Imports of what changed in a window, read from a REST API page by page into Lytics streams.

A run's window ends at the run's start time, fixed in the run folder on the first try, so a retry
reads the same window; it starts where the stream's last successful run ended (the job's state),
or at ``initial_since`` on the first run and with ``full_refresh``. Each page is posted to its
Lytics stream (:class:`~lytics_provider.files.ingest.StreamWriter`) and its position is saved once
Lytics acknowledged it: a page cursor in the run folder (:func:`send_cursor_pages`), so a retried
task continues after the last accepted page, or a watermark in the job's state. A dry run reads,
sends with Lytics' ``dryrun`` and moves no checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from airflow.sdk import BaseOperator, Context

from lytics_provider.files.ingest import FileCheckpoint, StateCheckpoint, StreamWriter
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.lytics import run_param
from lytics_provider.pipeline.workarea import JobState, run_dir

#: A page: its Lytics records and the position saved once Lytics acknowledged them.
Page = tuple[list[dict[str, Any]], Any]
#: The cursor saved once the last page of a stream was acknowledged.
DONE = "done"


def send_pages(writer: StreamWriter, pages: Iterable[Page]) -> int:
    """Post each page's records and flush them with the page's position; the number of records read."""
    read = 0
    for records, position in pages:
        writer.extend(records)
        writer.flush(position=position)
        read += len(records)
    return read


def send_cursor_pages(
    lytics: Any,
    stream: str,
    cursor: FileCheckpoint,
    fetch: Callable[[Any], Iterable[Page]],
    *,
    dry_run: bool,
    timestamp_field: str | None = None,
    done: str = DONE,
) -> dict[str, Any]:
    """Read pages from the saved cursor on and post them to ``stream``; the stream's report.

    :param lytics: the Lytics hook.
    :param stream: the Lytics stream.
    :param cursor: the run folder's cursor: the next page's, saved once Lytics acknowledged a page.
    :param fetch: the pages from a cursor (``None``: the first page); each page's position is the
        following page's cursor, ``None`` after the last page.
    :param dry_run: send with Lytics' ``dryrun`` and neither read nor save the cursor.
    :param timestamp_field: the record field Lytics takes as the event time.
    :param done: the cursor saved after the last page.
    """
    resume = None if dry_run else cursor.load()
    writer = StreamWriter(
        lytics, stream, timestamp_field=timestamp_field, dryrun=dry_run,
        on_ack=None if dry_run else cursor.save,
    )  # fmt: skip
    pages = [] if resume == done else fetch(resume)
    read = send_pages(writer, ((records, following or done) for records, following in pages))
    return {"resumed_at": resume, "read": read, "accepted": writer.accepted, "rejected": writer.rejected}


@dataclass(frozen=True)
class ImportWindow:
    """One run of a windowed import: the service's hook, the Lytics hook and the window's end."""

    hook: Any
    lytics: Any
    folder: Path
    until: Any
    dry_run: bool
    full: bool


class WindowedImportOperator(BaseOperator):
    """Import what changed since the last run, up to the run's start; see the module docstring.

    A subclass names its ``service`` (the run folder's files, the report's ``<service>_calls``),
    builds its hook (``make_hook``) and reads its streams (``import_streams``).

    :param job_id: the job's id (checkpoints, run folder).
    :param lytics_conn_id: the Lytics connection.
    :param initial_since: where the first run starts (ISO date).
    """

    service: ClassVar[str]
    template_fields: Sequence[str] = ("initial_since",)

    def __init__(
        self, *, job_id: str, lytics_conn_id: str = "lytics_default", initial_since: str, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())

    def require_a_stream(self, **flags: bool) -> None:
        """Refuse a configuration that selects none of the streams (``import_<stream>`` flags)."""
        if not any(flags.values()):
            names = [name.removeprefix("import_") for name in flags]
            raise ValueError(f"select {', '.join(names)} or both to import ({' / '.join(flags)})")

    def make_hook(self) -> Any:
        """The service's hook (its ``calls`` are reported)."""
        raise NotImplementedError

    def window_end(self, now_ms: int) -> Any:
        """The window's end as the service's filters take it, from epoch milliseconds."""
        return now_ms

    def import_streams(self, run: ImportWindow) -> dict[str, Any]:
        """Read the selected streams of ``run``; the report of each by name."""
        raise NotImplementedError

    def cursor_stream(
        self,
        run: ImportWindow,
        name: str,
        stream: str,
        fetch: Callable[[Any, Any], Iterable[Page]],
        *,
        first: Any,
        mark_key: str,
        since_key: str = "since",
        timestamp_field: str | None = None,
        done: str = DONE,
    ) -> dict[str, Any]:
        """Read one stream from its watermark to the window's end by page cursors; its report.

        The watermark (``mark_key`` in the job's state) moves to the window's end, and the run
        folder's cursor is cleared, once every page was acknowledged.

        :param run: the run.
        :param name: the stream's name in the run folder's cursor file.
        :param stream: the Lytics stream.
        :param fetch: the pages from ``(since, cursor)``; see :func:`send_cursor_pages`.
        :param first: where the first run, or a full refresh, starts.
        :param mark_key: the job state's key of the watermark.
        :param since_key: the report's key of where the read started.
        :param timestamp_field: the record field Lytics takes as the event time.
        :param done: the cursor saved after the last page.
        """
        mark = StateCheckpoint(self.job_id, mark_key)
        since = first if run.full else (mark.load() or first)
        cursor = FileCheckpoint(run.folder / f"{self.service}_{name}_cursor.json")
        report = {
            since_key: since,
            **send_cursor_pages(
                run.lytics, stream, cursor, lambda resume: fetch(since, resume),
                dry_run=run.dry_run, timestamp_field=timestamp_field, done=done,
            ),
        }  # fmt: skip
        if not run.dry_run:
            mark.save(run.until)
            cursor.clear()
        return report

    def execute(self, context: Context) -> dict[str, Any]:
        from lytics_provider.hooks.lytics import LyticsHook

        dry_run, full = run_param(context, "dry_run"), run_param(context, "full_refresh")
        folder = run_dir(self.job_id, context["run_id"])
        window = FileCheckpoint(folder / f"{self.service}_window.json")
        until = window.load()
        if until is None:
            until = self.window_end(int(time.time() * 1000))
            window.save(until)
        hook = self.make_hook()
        run = ImportWindow(hook, LyticsHook(self.lytics_conn_id), folder, until, dry_run, full)
        report: dict[str, Any] = {"until": until, "dry_run": dry_run}
        report.update(self.import_streams(run))
        report[f"{self.service}_calls"] = hook.calls
        if dry_run:
            self.log.info("Dry run: checkpoints not moved. Report: %s", report)
            return report
        JobState(self.job_id).update(last_run_id=context["run_id"], last_report=report)
        self.log.info("Imported. Report: %s", report)
        return report
