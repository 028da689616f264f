"""The run skeleton every audience sync shares: scan XCom -> baseline -> plan -> guard -> act -> report."""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from airflow.sdk import BaseOperator, Context

from lytics_provider.operators.lytics import as_bool
from lytics_provider.pipeline.exit_guard import (
    DEFAULT_MAX_EXIT_FRACTION,
    DEFAULT_MIN_EXITS,
    ExitGuardVerdict,
    enforce,
)
from lytics_provider.pipeline.state_store import baseline_snapshot
from lytics_provider.pipeline.workarea import JobState, run_dir
from lytics_provider.sync.changes import exit_guard, ledger_entries, plan_changes, start_tracking
from lytics_provider.sync.destination import SyncDestination
from lytics_provider.sync.ledger import MemberLedger
from lytics_provider.sync.plan import SyncPlan
from lytics_provider.sync.report import SyncReport, write_rejects


@dataclass
class SyncRunInputs:
    """What one run works on."""

    snapshot: str
    audience: dict[str, Any]
    members: int | None
    previous: Path | None
    dry_run: bool
    folder: Path
    run_id: str
    params: dict[str, Any]


class AudienceSyncOperator(BaseOperator):
    """Base of the audience deliveries: reads the scan, plans from the diff and guards exits.

    A destination that needs no more than plan -> guard -> act -> report implements
    :meth:`make_destination` only; :meth:`execute` runs the rest (a dry run plans and reports;
    rejects land in ``rejects.jsonl`` in the run folder; acknowledged adds and removals go to the
    job's ledger). Destinations with their own bulk path override :meth:`execute`.

    :param job_id: the job's id (work area, baseline, ledger).
    :param scan_task_id: the task whose XCom names the run's snapshot.
    :param max_exit_fraction: the exit guard stops a run whose exits (members sent an exit action)
        are more than this share of the previous audience (0 < x <= 1; see
        ``pipeline.exit_guard``). The run param ``allow_mass_exit`` lets one run through.
    :param exit_guard_min_exits: the guard acts only from this many exits.
    """

    config_error: type[ValueError] = ValueError
    #: the most members one batch may hold, for :meth:`check_batch_size`
    batch_limit: ClassVar[int]

    def __init__(
        self,
        *,
        job_id: str,
        scan_task_id: str = "scan",
        max_exit_fraction: float = DEFAULT_MAX_EXIT_FRACTION,
        exit_guard_min_exits: int = DEFAULT_MIN_EXITS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0 < max_exit_fraction <= 1:
            raise self.config_error(f"max_exit_fraction {max_exit_fraction!r} must be above 0 and at most 1")
        if exit_guard_min_exits < 0:
            raise self.config_error(f"exit_guard_min_exits {exit_guard_min_exits!r} must be 0 or more")
        self.job_id = job_id
        self.scan_task_id = scan_task_id
        self.max_exit_fraction = max_exit_fraction
        self.exit_guard_min_exits = exit_guard_min_exits

    def check_batch_size(self, batch_size: int) -> None:
        """Refuse a ``batch_size`` outside 1 to :attr:`batch_limit`."""
        if not 1 <= batch_size <= self.batch_limit:
            raise self.config_error(f"batch_size {batch_size!r} must be between 1 and {self.batch_limit}")

    def sync_inputs(self, context: Context) -> SyncRunInputs:
        """The run's snapshot, baseline (None on the first run or with ``full_refresh``) and folder."""
        params = context.get("params") or {}
        scan = context["ti"].xcom_pull(task_ids=self.scan_task_id) or {}
        if not scan.get("snapshot"):
            raise ValueError(f"task {self.scan_task_id!r} left no snapshot; run the scan task first")
        previous = None if as_bool(params.get("full_refresh")) else baseline_snapshot(self.job_id)
        return SyncRunInputs(
            snapshot=scan["snapshot"],
            audience=scan.get("audience") or {},
            members=scan.get("members"),
            previous=previous,
            dry_run=as_bool(params.get("dry_run")),
            folder=run_dir(self.job_id, context["run_id"]),
            run_id=context["run_id"],
            params=params,
        )

    def open_plan(self, inputs: SyncRunInputs, dest: SyncDestination, name: str) -> SyncPlan:
        """Open the run's plan file (``<name>_dry_run.db`` in a dry run) and plan it once per run.

        A dry run plans afresh every time; a retried run keeps the plan it made.
        """
        plan = SyncPlan(inputs.folder / (f"{name}_dry_run.db" if inputs.dry_run else f"{name}.db"))
        if plan.step("planned") is None or inputs.dry_run:
            plan.reset()
            with closing(MemberLedger(self.job_id)) as ledger:
                ledger.fold(JobState(self.job_id).get("last_run_id"))
                planned = plan_changes(plan, dest, inputs.snapshot, inputs.previous, ledger)
            planned.update(self.planned_extra(plan))
            plan.set_step("planned", planned)
        return plan

    def planned_extra(self, plan: SyncPlan) -> dict[str, Any]:
        """Destination-specific counts added to the ``planned`` step."""
        return {}

    def guard(self, plan: SyncPlan, dest: SyncDestination, inputs: SyncRunInputs) -> ExitGuardVerdict:
        return exit_guard(
            plan,
            dest,
            inputs.previous,
            self.max_exit_fraction,
            self.exit_guard_min_exits,
            as_bool(inputs.params.get("allow_mass_exit")),
        )

    def record_ledger(self, plan: SyncPlan, dest: SyncDestination, inputs: SyncRunInputs) -> None:
        """Store the run's acknowledged adds and removals (they count once the run commits)."""
        with closing(MemberLedger(self.job_id)) as ledger:
            start_tracking(plan, dest, ledger)
            ledger.record_run(inputs.run_id, ledger_entries(plan, dest))

    # -- the standard run -----------------------------------------------------------------------
    def make_destination(self, inputs: SyncRunInputs) -> SyncDestination:
        """The destination adapter for this run (connections resolved, lists looked up)."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_destination or execute")

    def execute(self, context: Context) -> dict[str, Any]:
        return self.run_sync(self.sync_inputs(context))

    def run_sync(self, inputs: SyncRunInputs, plan_name: str = "sync_plan") -> dict[str, Any]:
        """Plan, guard, act through the adapter, record the ledger; return the run report."""
        dest = self.make_destination(inputs)
        with closing(self.open_plan(inputs, dest, plan_name)) as plan:
            verdict = self.guard(plan, dest, inputs)
            report = SyncReport(
                planned=plan.step("planned"),
                dry_run=inputs.dry_run,
                exit_guard=verdict.as_report(),
                destination=dest.describe(),
            )
            if inputs.dry_run:
                if verdict.blocked:
                    self.log.warning("Dry run: %s", verdict.message(self.job_id))
                self.log.info("Dry run: nothing sent. Plan: %s", report.as_dict())
                return report.as_dict()
            enforce(verdict, self.job_id)
            self.log.info("Sending %s", {k: v for k, v in report.planned.items() if v})
            dest.act(plan)
            rejects = inputs.folder / "rejects.jsonl"
            report.rejected = write_rejects(plan, rejects)
            report.rejects_file = str(rejects) if report.rejected else None
            self.record_ledger(plan, dest, inputs)
            report.outcomes = plan.counts()
            report.destination.update(dest.describe_after())
        if report.rejected:
            self.log.warning("%d rows were rejected; reasons in %s", report.rejected, report.rejects_file)
        self.log.info("Delivered: %s", report.as_dict())
        return report.as_dict()
