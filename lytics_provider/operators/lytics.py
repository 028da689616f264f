"""Operators for the Lytics side of every job: scan an audience, commit a delivered run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator, Context

from lytics_provider.hooks.lytics import MAX_SCAN_LIMIT, CursorExpiredError, LyticsHook
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.pipeline.csv_render import CsvRowRenderer, RenderedRows
from lytics_provider.pipeline.gcpause import paused_gc
from lytics_provider.pipeline.identity import normalize_identity_fields, scan_field_names
from lytics_provider.pipeline.lytics_scan import page_members
from lytics_provider.pipeline.no_identity import write_no_identity_rejects
from lytics_provider.pipeline.progress import Progress
from lytics_provider.pipeline.retention import bytes_per_member, prune_job_runs
from lytics_provider.pipeline.scan_completeness import (
    RESTART_SCAN,
    EarlyEndBudget,
    ended_early,
    expected_members,
)
from lytics_provider.pipeline.shared_scan import (
    SharedScanArea,
    SharedScanRequest,
    adopt_shared_copy,
    read_shared_scan,
    shared_scan_key,
)
from lytics_provider.pipeline.snapshot import Snapshot, count_changes
from lytics_provider.pipeline.state_store import baseline_snapshot, commit_baseline
from lytics_provider.pipeline.workarea import run_dir

MAX_CURSOR_RESTARTS = 2


def as_bool(value: Any) -> bool:
    """Read a DAG param that may arrive as a bool or as rendered text."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def run_param(context: Context, name: str) -> bool:
    """A yes / no param of the DAG run (``dry_run``, ``full_refresh``, ...) from the task's context."""
    return as_bool((context.get("params") or {}).get(name))


class LyticsAudienceScanOperator(BaseOperator):
    """Stream every member of an audience into a run snapshot, resuming from its checkpoint.

    Each page is committed together with the cursor that follows it, so a retry after a
    dropped connection or a killed worker continues where the last committed page ended and
    nobody is written twice. A scan that ends short of the audience size the API reported is
    requested again, then restarted, then failed (``pipeline.scan_completeness``); only a
    complete scan is marked complete. Returns a small dict (never rows) for the next tasks.

    :param fetch_in_subprocess: follow the scan cursors in a child process while this one
        stores pages (two cores instead of one; see ``pipeline.scan_fetcher``). Off, pages are
        fetched and stored in turn in the task's own process.
    :param row_renderer: render each page as the file drop's CSV rows while storing it (the
        ``deliver`` task then only copies them; see ``pipeline.csv_render``).
    :param identity_fields: fields that key a member, first present wins (default ``_uid``,
        ``email``; see ``pipeline.identity``). A member with none of them is left out of the
        snapshot and written to the run's ``scan_rejects.jsonl`` with the reason.
    :param scan_max_age_minutes: share the scan with other jobs on the same audience and account:
        copy a complete shared scan younger than this, wait for one another job is running, or
        run it for all (see ``pipeline.shared_scan``). 0, or a ``user_limit``, scans alone.
    :param scan_fields: what to fetch when this task runs a shared scan, for every job sharing it:
        ``None`` for ``fields``, ``"all"`` for every field, or a list (``fields`` are added).
    """

    template_fields: Sequence[str] = ("audience",)

    def __init__(
        self,
        *,
        audience: str,
        job_id: str,
        lytics_conn_id: str = LyticsHook.default_conn_name,
        fields: Sequence[str] | None = None,
        user_limit: int | None = None,
        page_size: int = MAX_SCAN_LIMIT,
        digest_fields: Sequence[str] | None = None,
        fetch_in_subprocess: bool = True,
        row_renderer: CsvRowRenderer | None = None,
        identity_fields: Sequence[str] | None = None,
        scan_max_age_minutes: float = 30,
        scan_fields: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        self.fields = list(fields) if fields else None
        self.digest_fields = list(digest_fields) if digest_fields else None
        self.identity_fields = normalize_identity_fields(identity_fields)
        if isinstance(scan_fields, str) and scan_fields != "all":
            raise ValueError(f"scan_fields must be 'all', a list of field names or None, not {scan_fields!r}")

    def execute(self, context: Context) -> dict[str, Any]:
        hook = LyticsHook(self.lytics_conn_id)
        segment = hook.get_segment(self.audience)
        path = run_dir(self.job_id, context["run_id"]) / "snapshot.db"
        fields = sorted({*scan_field_names(self.identity_fields), *self.fields}) if self.fields else None
        identity = self.identity_fields
        shared_from = self._read_shared_scan(hook, segment, path, fields, context["run_id"])
        with Snapshot(path, digest_fields=self.digest_fields, identity_fields=identity) as snapshot:
            if snapshot.get_meta("segment_id") not in (None, segment["id"]):
                self.log.info("Audience changed since the last attempt of this run; starting over")
                snapshot.reset()
            snapshot.set_meta("segment_id", segment["id"])
            self._scan(hook, segment, snapshot, fields)
            members = snapshot.count()
            rejected = write_no_identity_rejects(snapshot, path.with_name("scan_rejects.jsonl"), self.log)
        self.log.info(
            "Scanned audience %r (%s): %d members into %s, %d API calls",
            segment.get("name"),
            segment["id"],
            members,
            path,
            hook.calls,
        )
        return {
            "snapshot": str(path),
            "members": members,
            "audience": {
                "id": segment["id"],
                "name": segment.get("name") or segment.get("slug_name") or self.audience,
                "slug": segment.get("slug_name") or self.audience,
            },
            "api_calls": hook.calls,
            "rejected": rejected,
            "rejects_file": str(path.with_name("scan_rejects.jsonl")) if rejected else None,
            "scan_shared_from": shared_from,
        }

    def _read_shared_scan(
        self, hook: LyticsHook, segment: dict[str, Any], path: Path, fields: list[str] | None, run: str
    ) -> str | None:
        """Fill ``path`` from a scan shared with other jobs when sharing is on; returns the shared
        scan this job read (None when it ran the scan or scans alone)."""
        if not self.scan_max_age_minutes or self.user_limit is not None:
            return None
        if path.exists():
            with Snapshot(path) as done:
                if done.checkpoint.complete and done.get_meta("segment_id") == segment["id"]:
                    return done.get_meta("scan_shared_from") or None
        if self.scan_fields == "all" or fields is None:
            wanted = None
        else:
            wanted = sorted({*fields, *(self.scan_fields or ())})

        def scan(snapshot: Snapshot) -> None:
            snapshot.set_meta("segment_id", segment["id"])
            self._scan(hook, segment, snapshot, wanted)

        area = SharedScanArea(
            shared_scan_key(
                hook.get_conn().base_url, hook.account_id, segment["id"], ",".join(self.identity_fields)
            )
        )
        request = SharedScanRequest(
            needed=fields,
            fields=wanted,
            max_age_seconds=self.scan_max_age_minutes * 60,
            job=self.job_id,
            run=run,
            scan=scan,
            log=self.log,
            identity_fields=self.identity_fields,
        )
        got = read_shared_scan(area, path, request)
        if got is None:
            return None
        adopt_shared_copy(
            path,
            segment_id=segment["id"],
            scan=got.scan,
            scanned_here=got.scanned_here,
            own_fields=fields,
            digest_fields=self.digest_fields,
            render_signature=self.row_renderer.signature if self.row_renderer else None,
        )
        return None if got.scanned_here else str(got.scan.directory)

    def _render_page(self, body: bytes, keep: int | None) -> RenderedRows:
        assert self.row_renderer is not None
        with paused_gc():
            members = page_members(body)
            return self.row_renderer.render(members if keep is None else members[:keep])

    def _scan(
        self, hook: LyticsHook, segment: dict[str, Any], snapshot: Snapshot, fields: list[str] | None
    ) -> None:
        restarts = 0
        early_ends = EarlyEndBudget(repr(segment.get("slug_name") or self.audience))
        if self.row_renderer is not None:
            snapshot.use_renderer(self.row_renderer.signature)
        while True:
            checkpoint = snapshot.checkpoint
            if checkpoint.complete:
                self.log.info("Snapshot already complete (%d members); nothing to scan", checkpoint.members)
                return
            if checkpoint.pages:
                self.log.info(
                    "Resuming scan after %d committed pages (%d members)",
                    checkpoint.pages,
                    checkpoint.members,
                )
            progress = Progress(self.log, "members scanned", segment.get("size") or checkpoint.total)
            progress.done = checkpoint.members
            stored = checkpoint.members
            limit = self.user_limit
            short: int | None = None
            try:
                for page in hook.scan_segment_raw(
                    segment["id"],
                    start=checkpoint.cursor,
                    limit=self.page_size,
                    fields=fields,
                    in_subprocess=self.fetch_in_subprocess,
                ):
                    keep = None if limit is None else max(0, limit - stored)
                    if page.last:
                        expected = expected_members(page.total, segment.get("size"), limit)
                        arriving = page.count if keep is None else min(page.count, keep)
                        if ended_early(stored + arriving, expected):
                            short = expected
                            break
                    rendered = self._render_page(page.body, keep) if self.row_renderer else None
                    added = snapshot.add_raw_page(page.body, page.next_cursor, page.total, keep, rendered)
                    stored += added
                    progress.total = progress.total or page.total
                    progress.advance(added)
                    if limit is not None and stored >= limit:
                        self.log.info("User limit %d reached", limit)
                        break
            except CursorExpiredError:
                restarts += 1
                if restarts > MAX_CURSOR_RESTARTS:
                    raise
                self.log.warning("Scan cursor expired; restarting the scan from the first page")
                snapshot.reset()
                continue
            if short is not None:
                self._after_early_end(hook, early_ends, snapshot, stored, short)
                continue
            snapshot.mark_complete()
            progress.finish()
            return

    def _after_early_end(
        self, hook: LyticsHook, budget: EarlyEndBudget, snapshot: Snapshot, stored: int, expected: int
    ) -> None:
        """Wait, then let the scan request the same page again or start over (raises when used up)."""
        step = budget.next_step(stored, expected)
        policy = hook.get_conn().policy
        wait = policy.backoff(budget.retried or 1)
        self.log.warning(
            "Scan of audience %s ended early: %d members stored, the API reported %d; %s in %.1fs",
            budget.audience,
            stored,
            expected,
            "restarting the scan from the first page"
            if step == RESTART_SCAN
            else f"requesting the page again ({budget.retried}/{budget.page_retries})",
            wait,
        )
        policy.sleep(wait)
        if step == RESTART_SCAN:
            snapshot.reset()


class LyticsCommitRunOperator(BaseOperator):
    """Report the run and make its snapshot the baseline of the next run's diff.

    Runs last, after the destination acknowledged delivery; a dry run commits nothing.
    Returns the run report: members, enters, exits, changes and what ``deliver`` reported.
    """

    def __init__(
        self, *, job_id: str, scan_task_id: str = "scan", deliver_task_id: str = "deliver", **kwargs: Any
    ):
        super().__init__(**kwargs)
        keep_arguments(self, locals())

    def execute(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        scan = ti.xcom_pull(task_ids=self.scan_task_id) or {}
        delivered = ti.xcom_pull(task_ids=self.deliver_task_id) or {}
        params = context.get("params") or {}
        previous = None if as_bool(params.get("full_refresh")) else baseline_snapshot(self.job_id)
        counts = count_changes(scan["snapshot"], previous)
        report = {
            "audience": scan.get("audience"),
            "members": scan.get("members"),
            "enters": counts.enters,
            "exits": counts.exits,
            "changes": counts.changes,
            "unchanged": counts.unchanged,
            "scan_api_calls": scan.get("api_calls"),
            "scan_rejected": scan.get("rejected", 0),
            "scan_rejects_file": scan.get("rejects_file"),
            "scan_shared_from": scan.get("scan_shared_from"),
            "delivery": delivered,
            "dry_run": as_bool(params.get("dry_run")),
            "snapshot_bytes_per_member": bytes_per_member(Path(scan["snapshot"]), scan.get("members")),
        }
        if report["dry_run"]:
            self.log.info("Dry run: state not committed. Report: %s", report)
            self.note_run(context, report)
            return report
        commit_baseline(self.job_id, context["run_id"], scan["snapshot"], report)
        prune_job_runs(self.job_id, context["run_id"])
        self.log.info("Run committed. Report: %s", report)
        self.note_run(context, report)
        return report

    def note_run(self, context: Context, report: dict[str, Any]) -> None:
        """Make the report's summary the DAG run's note (see ``jobs/run_note.py``); never fails the run."""
        from lytics_provider.jobs.run_note import report_note, set_run_note

        set_run_note(context, report_note(report))
