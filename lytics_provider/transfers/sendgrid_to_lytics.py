"""Import SendGrid contacts into Lytics ("Import Audiences"): ``sendgrid_users``.

Each run exports all contacts, or only those on the configured **Import Lists**
(``POST /v3/marketing/contacts/exports``, JSON lines, polled until ``ready``), downloads the
export's files and posts their records, each with its ``list_ids``, to the stream through the
ingest engine (:func:`~lytics_provider.files.ingest.ingest_file`): bad rows land in a rejects file
with the reason, and the row of the last batch Lytics acknowledged is saved after every batch, so
a retried task reattaches to the same export and resumes inside the file where it stopped.
"""

from __future__ import annotations

import time
from typing import Any

from airflow.sdk import BaseOperator, Context

from lytics_provider.files.ingest import FileCheckpoint, StreamWriter, ingest_file
from lytics_provider.files.readers import ReadOptions
from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.hooks.sendgrid import SendGridHook
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.lytics import run_param
from lytics_provider.pipeline.rejects import RejectsWriter
from lytics_provider.pipeline.retention import prune_job_runs
from lytics_provider.pipeline.workarea import run_dir

USERS_STREAM = "sendgrid_users"


class SendGridUsersToLyticsOperator(BaseOperator):
    """Export SendGrid contacts and post them to ``sendgrid_users`` (see the module docstring).

    :param job_id: the job (names the run folder).
    :param import_lists: SendGrid lists (ids or names) to import; default all contacts.
    :param stream: the Lytics stream.
    :param sendgrid_conn_id: the ``sendgrid`` connection.
    :param lytics_conn_id: the Lytics connection.
    :param batch_size: records per Lytics request (also bounded by bytes).
    :param poll_interval: seconds between polls of the export.
    :param export_timeout: seconds to wait for the export.
    """

    template_fields = ("stream",)
    sleep = staticmethod(time.sleep)

    def __init__(
        self,
        *,
        job_id: str,
        import_lists: list[str] | None = None,
        stream: str = USERS_STREAM,
        sendgrid_conn_id: str = SendGridHook.default_conn_name,
        lytics_conn_id: str = LyticsHook.default_conn_name,
        batch_size: int = 1000,
        poll_interval: float = 10.0,
        export_timeout: float = 3600.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())

    def execute(self, context: Context) -> dict[str, Any]:
        dry_run = run_param(context, "dry_run")
        hook = SendGridHook(self.sendgrid_conn_id)
        folder = run_dir(self.job_id, context["run_id"])
        started = FileCheckpoint(folder / "sendgrid_export.json")
        export = started.load() or {}
        if not export.get("id"):
            list_ids = [str(hook.resolve_list(ref)["id"]) for ref in self.import_lists or []]
            export = {"id": hook.start_export(list_ids), "files_done": []}
            started.save(export)
        urls = hook.wait_for_export(export["id"], self.poll_interval, self.export_timeout, self.sleep)
        lytics = LyticsHook(self.lytics_conn_id)
        report: dict[str, Any] = {
            "stream": self.stream,
            "export_id": export["id"],
            "files": len(urls),
            "rows": 0,
            "sent": 0,
            "rejected": 0,
            "dry_run": dry_run,
        }
        for index, url in enumerate(urls):
            name = f"sendgrid_export_{index}.json.gz"
            if name in export["files_done"]:
                continue
            local = folder / "downloads" / name
            local.parent.mkdir(parents=True, exist_ok=True)
            hook.download(url, local)
            writer = StreamWriter(
                lytics, self.stream, filename=name, max_batch_records=self.batch_size, send=not dry_run
            )
            with RejectsWriter(folder / f"rejects_{name}.jsonl", logger=self.log) as rejects:
                result = ingest_file(
                    local,
                    name,
                    writer,
                    FileCheckpoint(folder / "in_progress.json"),
                    rejects,
                    ReadOptions("jsonl"),
                    logger=self.log,
                )
            report["rows"] += result.rows
            report["sent"] += result.sent
            report["rejected"] += result.rejected
            local.unlink(missing_ok=True)
            if not dry_run:
                export["files_done"].append(name)
                started.save(export)
        report["sendgrid_calls"] = hook.calls + hook.downloads
        report["lytics_calls"] = lytics.calls
        if not dry_run:
            prune_job_runs(self.job_id, context["run_id"])
        self.log.info("SendGrid users import: %s", report)
        return report
