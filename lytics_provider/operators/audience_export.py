"""The base of every audience export: read the scan's XCom, pick the fields, then plan or deliver.

File drops (:mod:`lytics_provider.files.export_operator`) and the warehouse exports extend it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, Context

from lytics_provider.files.export_naming import run_moment, run_stamp
from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.hooks.permanent_errors import FailFastOnPermanentErrors
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.lytics import run_param
from lytics_provider.pipeline.object_files import StagedFile, stage_file
from lytics_provider.pipeline.rejects import RejectsWriter
from lytics_provider.pipeline.snapshot import Snapshot
from lytics_provider.pipeline.workarea import run_dir

if TYPE_CHECKING:
    from lytics_provider.pipeline.warehouse_types import Column


class AudienceExportOperator(FailFastOnPermanentErrors, BaseOperator):
    """Base of the audience exports: read the scan XCom, pick the fields, stage, deliver.

    Subclasses implement :meth:`deliver` (and :meth:`plan` for dry runs). ``fields`` are the
    Lytics fields to export (default: every field of the user schema).

    :param job_id: the job (names the run directory).
    :param fields: Lytics fields to export (default: every field of the user schema).
    :param scan_task_id: the task whose XCom names the snapshot.
    :param lytics_conn_id: Lytics connection (for the schema).
    """

    template_fields: Sequence[str] = ("fields",)

    def __init__(
        self,
        *,
        job_id: str,
        fields: Sequence[str] | None = None,
        scan_task_id: str = "scan",
        lytics_conn_id: str = LyticsHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        self.fields = list(fields) if fields else None

    def execute(self, context: Context) -> dict[str, Any]:
        scan = context["ti"].xcom_pull(task_ids=self.scan_task_id)
        if not scan or not scan.get("snapshot"):
            raise ValueError(f"task {self.scan_task_id!r} returned no snapshot; run the scan task first")
        self.work_dir = run_dir(self.job_id, context["run_id"])
        self.moment = run_moment(context)
        self.stamp = run_stamp(context)
        self.audience = dict(scan["audience"])
        self.slug = str(scan["audience"]["slug"])
        self.snapshot_path = Path(scan["snapshot"])
        self.members = int(scan.get("members") or 0)
        self.scanned_members: int | None = None if scan.get("members") is None else int(scan["members"])
        dry_run = run_param(context, "dry_run")
        report: dict[str, Any] = {"audience": scan["audience"], "members": self.members, "dry_run": dry_run}
        if dry_run:
            report.update(self.plan(context))
            self.log.info("Dry run: nothing sent. Plan: %s", report)
            return report
        report.update(self.deliver(context))
        self.log.info("Delivered: %s", report)
        return report

    # -- helpers for subclasses ----------------------------------------------------------------
    def schema_fields(self) -> list[dict[str, Any]]:
        """The user schema from Lytics (one API call)."""
        return LyticsHook(self.lytics_conn_id).get_schema_fields("user")

    def field_names(self) -> list[str]:
        """The fields to export: as configured, else every schema field."""
        if self.fields:
            return self.fields
        return [str(f["id"]) for f in self.schema_fields()]

    def records(self) -> Iterator[dict[str, Any]]:
        """The snapshot's members, streamed."""
        with Snapshot(self.snapshot_path) as snapshot:
            yield from snapshot.iter_records()

    def rejects(self, name: str = "rejects.jsonl") -> RejectsWriter:
        """A rejects file in the run directory."""
        return RejectsWriter(self.work_dir / name, logger=self.log)

    def stage_warehouse_csv(self, columns: Sequence[Column], name: str, rejects: RejectsWriter) -> StagedFile:
        """Stage the audience as a gzip CSV whose header is the column names and cells are typed."""
        from lytics_provider.pipeline.warehouse_types import row_cells

        return stage_file(
            self.records(),
            self.work_dir / "staged",
            name,
            file_format="csv",
            columns=[c.name for c in columns],
            to_row=lambda record: row_cells(record, columns),
            compression="gz",
            rejects=rejects,
        )

    def plan(self, context: Context) -> dict[str, Any]:
        """What a real run would do (dry run)."""
        return {}

    def deliver(self, context: Context) -> dict[str, Any]:  # pragma: no cover - abstract
        """Send the audience; return the delivery report."""
        raise NotImplementedError
