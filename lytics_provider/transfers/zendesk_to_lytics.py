"""Zendesk "Import Tickets and Users": the incremental exports into ``zendesk_users`` / ``zendesk_tickets``.

Each run reads ``GET /api/v2/incremental/{users|tickets}/cursor.json`` from the saved cursor (the
first run from ``start_time``, the job's Since) page by page (``after_cursor``) until
``end_of_stream``, and sends each page to the Lytics stream. A page's ``after_cursor`` is saved
only after Lytics accepted the page, so a retried run re-reads at most the page that was not
acknowledged (Lytics merges a re-sent user or ticket by its id). The incremental exports allow
10 requests a minute; the hook keeps that budget and waits out 429 + ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context

from lytics_provider.files.ingest import StateCheckpoint, StreamWriter
from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.hooks.permanent_errors import FailFastOnPermanentErrors
from lytics_provider.hooks.zendesk import ZendeskApiHook
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.lytics import run_param
from lytics_provider.pipeline.timestamps import parse_rfc3339

KINDS = ("users", "tickets")


class ZendeskToLyticsOperator(FailFastOnPermanentErrors, BaseOperator):
    """Import Tickets and Users from the Zendesk incremental exports.

    :param job_id: the job (names the saved cursors).
    :param zendesk_conn_id: the Zendesk connection.
    :param kinds: ``users`` and / or ``tickets``.
    :param since: RFC 3339 start of the first run (default: the epoch, everything).
    :param per_page: records per page (at most 1000).
    :param stream_prefix: the streams are ``{stream_prefix}_{kind}``.
    :param requests_per_minute: the account's per-minute API budget.
    :param lytics_conn_id: the Lytics connection.
    """

    template_fields: Sequence[str] = ("since",)

    def __init__(
        self,
        *,
        job_id: str,
        zendesk_conn_id: str = "zendesk_default",
        kinds: Sequence[str] = KINDS,
        since: str | None = None,
        per_page: int = 1000,
        stream_prefix: str = "zendesk",
        requests_per_minute: int = 200,
        lytics_conn_id: str = LyticsHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"kinds {unknown} are not Zendesk incremental exports; use users and/or tickets")
        self.kinds = list(kinds)
        self.per_page = min(int(per_page), 1000)

    def execute(self, context: Context) -> dict[str, Any]:
        dry_run = run_param(context, "dry_run")
        start = parse_rfc3339(self.since)
        start_time = int(start.timestamp()) if start else 0
        zendesk = ZendeskApiHook(self.zendesk_conn_id, requests_per_minute=self.requests_per_minute)
        lytics = LyticsHook(self.lytics_conn_id)
        report: dict[str, Any] = {"dry_run": dry_run}
        for kind in self.kinds:
            checkpoint = StateCheckpoint(self.job_id, f"cursor_{kind}")
            cursor = (checkpoint.load() or {}).get("cursor")
            stream = f"{self.stream_prefix}_{kind}"
            writer = StreamWriter(
                lytics, stream, timestamp_field="updated_at", on_ack=checkpoint.save, send=not dry_run
            )
            pages = 0
            while True:
                page = zendesk.incremental_page(kind, cursor, start_time, self.per_page)
                pages += 1
                writer.extend(page.get(kind) or [])
                after = page.get("after_cursor") or cursor
                writer.flush({"cursor": after})
                cursor = after
                if page.get("end_of_stream") or dry_run:
                    break
            report[kind] = {
                "stream": stream,
                "records": writer.records,
                "pages": pages,
                "rejected": writer.rejected,
            }
        report["zendesk_calls"] = zendesk.calls
        report["throttled"] = zendesk.throttled
        self.log.info("Zendesk import done: %s", report)
        return report
