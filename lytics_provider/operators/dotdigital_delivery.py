"""The Dotdigital delivery operator: the sync destination adapter, and the ``deliver`` task that
plans a run and carries it out with the bulk import, bulk removal, per-contact and status steps."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow.sdk import Context, conf

from lytics_provider.hooks.dotdigital import DotdigitalHook
from lytics_provider.operators.dotdigital_bulk_import import DotdigitalBulkImportSteps
from lytics_provider.operators.dotdigital_options import (
    MAX_IMPORT_BYTES,
    DotdigitalConfigError,
    DotdigitalImportError,
    ExportOptions,
)
from lytics_provider.operators.dotdigital_removal import DotdigitalRemovalSteps
from lytics_provider.operators.dotdigital_status import DotdigitalStatusSync
from lytics_provider.pipeline.exit_guard import enforce
from lytics_provider.sync.destination import SyncDestination
from lytics_provider.sync.identifiers import is_email, lookup_field, normalize_email, scalar_text
from lytics_provider.sync.operator import AudienceSyncOperator, SyncRunInputs
from lytics_provider.sync.plan import SyncPlan
from lytics_provider.sync.report import SyncReport, write_rejects
from lytics_provider.sync.wait import BulkJobTimeout, wait_for_status
from lytics_provider.triggers.bulk_job import BulkJobTrigger

REJECT_COLUMNS = (
    ("email", "ident"),
    ("address_book", "target"),
    ("action", "action"),
    ("uid", "uid"),
    ("status", "status"),
    ("reason", "reason"),
)


class DotdigitalDestination(SyncDestination):
    """How the sync engine plans for Dotdigital: members by email, targets are address books."""

    tracked_exit_actions = ("remove", "unsubscribe")

    def __init__(self, op: _DotdigitalDeliveryOperator, books: dict[str, str]) -> None:
        self.op = op
        self.books = books
        self.enter_kinds = op.enter_kinds
        self.dropped: Counter[str] = Counter()

    def identify(self, record: dict[str, Any]) -> tuple[str, str | None]:
        opts = self.op.options
        ref = self.contact_id(lookup_field(record, opts.id_field))
        return normalize_email(lookup_field(record, opts.email_field)), ref

    def contact_id(self, value: Any) -> str | None:
        """The member's contact id in this connection's account: the ID Field's value, or, when
        it is a map of one contact id per account (users imported from several accounts), the
        entry of this account; ``None`` when there is none (the removal looks the email up)."""
        if isinstance(value, dict):
            value = value.get(self.op.account_id)
        if isinstance(value, (list, dict, tuple, set)):
            return None
        return scalar_text(value).strip() or None

    def invalid_reason(self, ident: str, record: dict[str, Any]) -> str | None:
        if is_email(ident):
            return None
        field_name = self.op.options.email_field
        return f"{field_name!r} is not a valid email address" if ident else f"no email in {field_name!r}"

    def targets(self, record: dict[str, Any]) -> list[str]:
        return self.op.targets(record, self.books)

    def payload(self, record: dict[str, Any]) -> dict[str, str]:
        fields: dict[str, str] = {}
        for source, target in self.op.options.map_fields.items():
            value = lookup_field(record, source)
            if isinstance(value, (list, dict, tuple, set)):
                if value:
                    self.dropped[source] += 1
                continue
            fields[target] = scalar_text(value)
        return fields

    def enter_action(self) -> str:
        return self.op.enter_action()

    def exit_action(self) -> str:
        return self.op.exit_action()


class _DotdigitalDeliveryOperator(
    DotdigitalBulkImportSteps, DotdigitalRemovalSteps, DotdigitalStatusSync, AudienceSyncOperator
):
    """Shared Dotdigital delivery: bulk import, bulk removal, per-contact calls, status sync.

    Planning, the exit guard, checkpoints, tracked removals and rejects come from ``sync``.

    :param dotdigital_conn_id: the Dotdigital connection (API user).
    :param lytics_conn_id: the Lytics connection (status sync).
    :param email_field: Lytics field with the email.
    :param id_field: Lytics field with the Dotdigital contact id (bulk removal by id); a map of
        one contact id per account is read at this connection's account id.
    :param map_fields: Lytics field -> Dotdigital data field; arrays and maps are dropped.
    :param opt_in_type: Opt-in Type of added contacts.
    :param email_type: Email Type of added contacts.
    :param trigger_join_actions: add contacts one call each so join actions fire.
    :param resubscribe: resubscribe unsubscribed / suppressed contacts (with a challenge).
    :param resubscribe_with_no_challenge: resubscribe without a confirmation email.
    :param sync_status: write each contact's outcome to ``dotmailer_export_status``.
    :param max_file_bytes: upper bound of one import file (below the endpoint's limit).
    :param poll_interval: seconds between bulk job status polls.
    :param timeout: seconds to wait for one bulk job.
    :param deferrable: wait for bulk jobs in the triggerer (``triggers.bulk_job``), freeing the
        worker slot; default from ``[operators] default_deferrable``.
    """

    ui_color = "#f4b183"
    enter_kinds: tuple[str, ...] = ("enter", "change")
    sleep = staticmethod(time.sleep)
    config_error = DotdigitalConfigError

    def __init__(
        self,
        *,
        dotdigital_conn_id: str = DotdigitalHook.default_conn_name,
        lytics_conn_id: str = "lytics_default",
        email_field: str = "email",
        id_field: str = "dm_contact_id",
        map_fields: dict[str, str] | None = None,
        opt_in_type: str = "Unknown",
        email_type: str = "Html",
        trigger_join_actions: bool = False,
        resubscribe: bool = False,
        resubscribe_with_no_challenge: bool = False,
        sync_status: bool = False,
        max_file_bytes: int = MAX_IMPORT_BYTES,
        poll_interval: float = 15.0,
        timeout: float = 6 * 3600.0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.dotdigital_conn_id = dotdigital_conn_id
        self.lytics_conn_id = lytics_conn_id
        self.deferrable = deferrable
        self.options = ExportOptions.of(locals())
        self._resumed: dict[str, str] = {}

    # -- hooks for subclasses -------------------------------------------------------------------
    def resolve_books(self, hook: DotdigitalHook, audience: dict[str, Any], dry_run: bool) -> dict[str, str]:
        """``book id -> name`` of the address books this run writes to."""
        raise NotImplementedError

    def targets(self, record: dict[str, Any], books: dict[str, str]) -> list[str]:
        """Address books a member belongs in (all resolved books by default)."""
        return list(books)

    def enter_action(self) -> str:
        return "add"

    def exit_action(self) -> str:
        return "ignore"

    def release(self) -> None:
        """Close what planning opened (called once the run's plan is closed)."""

    # -- execution ------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        return self._deliver(context)

    def _deliver(self, context: Context) -> dict[str, Any]:
        inputs = self.sync_inputs(context)
        folder = inputs.folder
        hook = DotdigitalHook(self.dotdigital_conn_id)
        account = hook.account_info()
        self.account_id = str(account.get("id"))
        books = self.resolve_books(hook, inputs.audience, inputs.dry_run)
        self._check_data_fields(hook)
        dest = DotdigitalDestination(self, books)
        plan = self.open_plan(inputs, dest, "dotdigital_plan")
        try:
            verdict = self.guard(plan, dest, inputs)
            report = SyncReport(
                planned=plan.step("planned"),
                dry_run=inputs.dry_run,
                exit_guard=verdict.as_report(),
                destination={"account_id": self.account_id, "address_books": books},
            )
            if inputs.dry_run:
                if verdict.blocked:
                    self.log.warning("Dry run: %s", verdict.message(self.job_id))
                report.destination["dotdigital_calls"] = hook.calls
                self.log.info("Dry run: nothing sent. Plan: %s", report.as_dict())
                return report.as_dict()
            enforce(verdict, self.job_id)
            for book in plan.targets("add"):
                self._adds(hook, plan, book, folder)
            for kind in ("remove", "unsubscribe", "resubscribe"):
                for book in plan.targets(kind):
                    getattr(self, f"_{kind}s")(hook, plan, book)
            report.rejected = write_rejects(plan, folder / "rejects.csv", REJECT_COLUMNS)
            self.record_ledger(plan, dest, inputs)
            if self._writes_status() and plan.step("status_synced") is None:
                plan.set_step("status_synced", self._sync_status(plan))
            report.outcomes = plan.counts()
            report.rejects_file = str(folder / "rejects.csv")
            report.destination.update(
                imports=plan.step("imports") or {},
                status_sync=plan.step("status_synced"),
                dotdigital_calls=hook.calls,
            )
        finally:
            plan.close()
            self.release()
        if report.rejected:
            self.log.warning("%d contacts were rejected; reasons in %s", report.rejected, report.rejects_file)
        self.log.info("Delivered to Dotdigital: %s", report.as_dict())
        return report.as_dict()

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after a deferred bulk-job wait: the plan's steps carry on from where it stopped."""
        if event.get("error"):
            raise DotdigitalImportError(
                f"Checking Dotdigital job {event.get('job_id')} failed: {event['error']}; "
                "a retry reconnects to it"
            )
        if event.get("timed_out"):
            raise DotdigitalImportError(
                f"Dotdigital job {event.get('job_id')} still {event.get('status')!r} after "
                f"{self.options.timeout:.0f}s; a retry reconnects to it"
            )
        self._resumed = {str(event["job_id"]): str(event["status"])}
        return self._deliver(context)

    def planned_extra(self, plan: SyncPlan) -> dict[str, Any]:
        dropped = getattr(self, "_dropped", None)
        return {"dropped_fields": dict(dropped or {})}

    def open_plan(self, inputs: SyncRunInputs, dest: SyncDestination, name: str) -> SyncPlan:
        assert isinstance(dest, DotdigitalDestination)
        self._dropped = dest.dropped
        plan = super().open_plan(inputs, dest, name)
        if dest.dropped:
            self.log.warning(
                "Dropped non-scalar values (arrays and maps are not supported by Dotdigital): %s",
                dict(dest.dropped),
            )
        return plan

    def _check_data_fields(self, hook: DotdigitalHook) -> None:
        wanted = self.options.columns
        if not wanted:
            return
        known = {str(f.get("name", "")).upper() for f in hook.list_data_fields()}
        missing = [name for name in wanted if name.upper() not in known]
        if missing:
            raise DotdigitalConfigError(
                f"map_fields of job {self.job_id!r} names data fields that do not exist in Dotdigital "
                f"account {self.account_id}: {', '.join(missing)}. Create them in Dotdigital "
                f"(Contacts > Data fields) or remove them from map_fields. "
                f"Known fields: {', '.join(sorted(known))}."
            )

    def _adds(self, hook: DotdigitalHook, plan: SyncPlan, book: str, folder: Path) -> None:
        if self.options.trigger_join_actions and book != "account":
            self._add_one_by_one(hook, plan, book)
        else:
            self._add_in_bulk(hook, plan, book, folder)

    def _wait(self, poll: Callable[[], str], pending: str, job_id: str, status_of: str) -> str:
        """Wait for a bulk job: resume with a deferred wait's status, defer, or poll in the worker."""
        if job_id in self._resumed:
            return self._resumed.pop(job_id)
        what = f"Dotdigital job {job_id}"
        if self.deferrable:
            status = poll()
            if status != pending:
                return status
            self.log.info("%s is %s; deferring the wait to the triggerer", what, status)
            self.defer(
                trigger=BulkJobTrigger(
                    status_callable=f"lytics_provider.hooks.dotdigital.{status_of}",
                    kwargs={"dotdigital_conn_id": self.dotdigital_conn_id, "job_id": job_id},
                    job_id=job_id,
                    pending=[pending],
                    poll_interval=self.options.poll_interval,
                    timeout=self.options.timeout,
                ),
                method_name="execute_complete",
            )
        try:
            return wait_for_status(
                poll, (pending,), self.options.poll_interval, self.options.timeout, what, self.sleep
            )
        except BulkJobTimeout as exc:
            raise DotdigitalImportError(str(exc)) from None
