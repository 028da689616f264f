"""Export Audiences to Salesforce: members upserted into any object through Bulk API 2.0 ingest jobs.

The ``deliver`` task of the export DAG (``scan`` → ``deliver`` → ``report``), on the sync engine
(:class:`~lytics_provider.sync.operator.AudienceSyncOperator`): the first run (or ``full_refresh``)
backfills every member, later runs send who entered, whose mapped fields changed, and who exited.

Per member the mapped fields (``mapping``: Lytics field → Salesforce field) are written, keyed by
``external_id_field`` (an External ID field of the object, or ``Id``) whose value is the member's
``id_field``: an upsert, so a member with no record gets a new one (a new Lead) and one with a
record has it updated. An exit sends the member's mapped fields again (the seed: every user
"entering/exiting the audience" is exported with "all fields that are provided in the mapping"),
with ``membership_field`` (a checkbox, when set) false; nothing is ever deleted. Exits are sent only
for members this job wrote (the sync ledger), so an exit never creates a record.

Delivery: the planned rows (enters and exits together: both are upserts) become CSV files of at most
``batch_bytes`` (Salesforce takes at most 100 MB of CSV per upload), each one Bulk API 2.0 ingest
job: create (``POST jobs/ingest``, ``upsert``), upload (``PUT .../batches``, streamed from disk),
close (``PATCH`` ``UploadComplete``), poll, then ``successfulResults`` (``sf__Id``, ``sf__Created``)
and ``failedResults`` (``sf__Error``), both streamed to disk. Each job id is stored in the run's
sync plan as soon as it exists, so a retried task reconnects to the job it started (waits for it, or
aborts a job whose upload never completed and starts it again) instead of creating a second one;
rows a finished job reported are never sent again. ``sf__Error`` rows go to ``rejects.jsonl`` with
Salesforce's reason.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.salesforce import MAX_UPLOAD_BYTES, SalesforceBulkHook
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.pipeline.progress import Progress
from lytics_provider.pipeline.workarea import atomic_write_text, job_dir
from lytics_provider.sync.destination import SyncDestination
from lytics_provider.sync.identifiers import lookup_field, scalar_text
from lytics_provider.sync.operator import AudienceSyncOperator, SyncRunInputs
from lytics_provider.sync.plan import Outcome, SyncPlan, Work

CREATED, UPDATED, REJECTED, UNPROCESSED = "Created", "Updated", "Rejected", "Unprocessed"
_KINDS = ("add", "update")
DESCRIBE_MAX_AGE = 86400.0


class SalesforceConfigError(AirflowFailException):
    """The job's object or fields do not match the org (an unknown field, a field that cannot be written)."""


def csv_value(value: Any) -> str:
    """A member value as Bulk API CSV text (lists as multi-select picklist ``a;b``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ";".join(csv_value(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


class SalesforceObjectDestination(SyncDestination):
    """Members upserted into one Salesforce object by an external id; exits update, never delete."""

    tracked_exit_actions = ("update",)
    reject_status = REJECTED

    def __init__(
        self,
        hook: SalesforceBulkHook,
        folder: Path,
        salesforce_object: str,
        external_id_field: str,
        id_field: str,
        mapping: dict[str, str],
        membership_field: str | None,
        update_on_exit: bool,
        batch_bytes: int,
        poll_interval: float,
        job_timeout: float,
    ) -> None:
        keep_arguments(self, locals())
        self.trigger_fields = sorted(mapping)
        self.value_columns = [c for c in dict.fromkeys(mapping.values()) if c != external_id_field]
        self.columns = [external_id_field, *self.value_columns]
        if membership_field:
            self.columns.append(membership_field)
        self.jobs: list[str] = []

    # -- planning ------------------------------------------------------------------------------
    def identify(self, record: dict[str, Any]) -> tuple[str, str | None]:
        return scalar_text(lookup_field(record, self.id_field)) or "", None

    def invalid_reason(self, ident: str, record: dict[str, Any]) -> str | None:
        if not ident:
            return f"no {self.id_field} value, so no {self.external_id_field} to match the record by"
        return None

    def targets(self, record: dict[str, Any]) -> list[str]:
        return [self.salesforce_object]

    def payload(self, record: dict[str, Any]) -> dict[str, Any]:
        return {sf: csv_value(lookup_field(record, name)) for name, sf in self.mapping.items()}

    def exit_action(self) -> str:
        return "update" if self.update_on_exit else "ignore"

    def payload_actions(self) -> tuple[str, ...]:
        return _KINDS

    def describe(self) -> dict[str, Any]:
        return {
            "object": self.salesforce_object,
            "external_id_field": self.external_id_field,
            "operation": "upsert",
            "fields": self.columns,
        }

    def describe_after(self) -> dict[str, Any]:
        return {
            "bulk_jobs": list(self.jobs),
            "salesforce_calls": self.hook.calls,
            "api_usage": self.hook.api_usage,
        }

    # -- acting --------------------------------------------------------------------------------
    def act(self, plan: SyncPlan, kinds: Sequence[str] = _KINDS) -> None:
        """Enters and exits of a target go in the same upsert jobs (exits carry membership false)."""
        for target in sorted({t for kind in kinds for t in plan.targets(kind)}):
            total = sum(plan.count_work(kind) for kind in kinds)
            progress = Progress(self.hook.log, f"upserts to Salesforce {target}", total)
            key = f"bulk:{target}"
            files = plan.step(key)
            if files is None:
                files = self._write_files(plan, kinds, target)
                plan.set_step(key, files)
            for entry in files:
                if not entry.get("done"):
                    self._run_job(plan, target, entry, lambda f=files, k=key: plan.set_step(k, f))
                if entry.get("job_id"):
                    self.jobs.append(entry["job_id"])
                progress.advance(entry["rows"])
            progress.finish()

    def _write_files(self, plan: SyncPlan, kinds: Sequence[str], target: str) -> list[dict[str, Any]]:
        """The target's rows as CSV files of at most ``batch_bytes`` (one ingest job each); a file
        lists the ``parts`` (kind, first and last plan ``seq``) it holds."""
        files: list[dict[str, Any]] = []
        handle = None
        size = 0
        seen: set[str] = set()
        header = _csv_line(self.columns)
        try:
            for kind in kinds:
                member = "true" if kind == "add" else "false"
                part: dict[str, Any] | None = None
                for work in plan.iter_work(kind, target):
                    fields = work.fields()
                    row = [work.ident, *(fields.get(c, "") for c in self.value_columns)]
                    if self.membership_field:
                        row.append(member)
                    line = _csv_line(row)
                    length = len(line.encode("utf-8"))
                    if handle is None or size + length > self.batch_bytes:
                        if handle is not None:
                            handle.close()
                        path = self.folder / f"salesforce-upsert-{len(files) + 1:04d}.csv"
                        files.append({"file": str(path), "parts": [], "rows": 0})
                        handle = path.open("w", encoding="utf-8", newline="")
                        handle.write(header)
                        size, seen, part = len(header.encode("utf-8")), set(), None
                    if part is None:
                        part = {"kind": kind, "first": work.seq, "last": work.seq}
                        files[-1]["parts"].append(part)
                    part["last"] = work.seq
                    if work.ident in seen:  # the same external id twice in one job: Salesforce refuses both
                        continue
                    seen.add(work.ident)
                    handle.write(line)
                    size += length
                    files[-1]["rows"] += 1
        finally:
            if handle is not None:
                handle.close()
        return files

    def _run_job(self, plan: SyncPlan, target: str, entry: dict[str, Any], save: Any) -> None:
        hook = self.hook
        info: dict[str, Any] | None = None
        if entry.get("job_id"):
            info = hook.job(entry["job_id"])
            hook.log.info("Reconnecting to Salesforce ingest job %s (%s)", entry["job_id"], info.get("state"))
            if info.get("state") == "Open":  # the upload may be partial: nothing was processed yet
                hook.set_state(entry["job_id"], "Aborted")
                info = None
            elif info.get("state") == "Aborted":
                info = None
        if info is None:
            created = hook.create_ingest_job(target, "upsert", self.external_id_field)
            entry["job_id"] = created["id"]
            save()
            hook.upload(created["id"], Path(entry["file"]))
            hook.set_state(created["id"], "UploadComplete")
            hook.log.info("Salesforce ingest job %s: %d rows uploaded", created["id"], entry["rows"])
        hook.wait(entry["job_id"], "ingest", self.poll_interval, self.job_timeout)
        base = Path(entry["file"]).with_suffix("")
        done = _read_results(
            hook.ingest_results(entry["job_id"], "successfulResults", base.with_suffix(".ok.csv")),
            self.external_id_field,
            "sf__Created",
        )
        failed = _read_results(
            hook.ingest_results(entry["job_id"], "failedResults", base.with_suffix(".failed.csv")),
            self.external_id_field,
            "sf__Error",
        )
        outcomes: list[Outcome] = []
        for kind, work in self._rows_of(plan, target, entry):
            if work.ident in done:
                record_id, created_flag = done[work.ident]
                status = CREATED if created_flag == "true" else UPDATED
                outcomes.append((work.ident, target, kind, work.uid, status, record_id, None))
            elif work.ident in failed:
                reason = f"Salesforce refused the row: {failed[work.ident][1]}"
                outcomes.append((work.ident, target, kind, work.uid, REJECTED, None, reason))
            else:
                reason = f"ingest job {entry['job_id']} did not process the row (not in its results)"
                outcomes.append((work.ident, target, kind, work.uid, UNPROCESSED, None, reason))
        entry["done"] = True
        entry["failed"] = len(failed)
        plan.record(outcomes)
        save()

    @staticmethod
    def _rows_of(plan: SyncPlan, target: str, entry: dict[str, Any]) -> Iterator[tuple[str, Work]]:
        for part in entry["parts"]:
            for work in plan.work_between(part["kind"], target, part["first"], part["last"]):
                yield part["kind"], work


def _csv_line(values: Sequence[str]) -> str:
    out: list[str] = []

    class _Sink:
        def write(self, text: str) -> None:
            out.append(text)

    csv.writer(_Sink(), lineterminator="\n").writerow(values)
    return "".join(out)


def _read_results(path: Path, key: str, column: str) -> dict[str, tuple[str, str]]:
    """``external id -> (sf__Id, column value)`` of a results file (read row by row)."""
    found: dict[str, tuple[str, str]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            found[row.get(key) or ""] = (row.get("sf__Id") or "", row.get(column) or "")
    return found


class LyticsToSalesforceOperator(AudienceSyncOperator):
    """Export Audiences: upsert the members into a Salesforce object; see the module docstring.

    :param job_id: the job's id.
    :param salesforce_object: the object's API name (``Lead``, ``Contact``, ``My_Object__c``).
    :param external_id_field: the object's External ID field (or ``Id``) that matches members.
    :param id_field: the Lytics field whose value goes in ``external_id_field``.
    :param mapping: Lytics field → Salesforce field; every mapped field is sent.
    :param membership_field: a checkbox set true on enter and false on exit (optional).
    :param update_on_exit: send exits (the mapped fields, membership false); never a delete.
    :param salesforce_conn_id: the ``salesforce`` connection.
    :param daily_api_calls: the export's share of the org's daily API requests.
    :param batch_bytes: CSV bytes per ingest job (at most 100 MB).
    :param poll_interval: seconds between job status reads.
    :param job_timeout_minutes: how long one job is waited for before the task fails (a retry reconnects).
    """

    template_fields = ("salesforce_object",)

    def __init__(
        self,
        *,
        salesforce_object: str,
        external_id_field: str,
        mapping: dict[str, str],
        id_field: str = "_uid",
        membership_field: str | None = None,
        update_on_exit: bool = True,
        salesforce_conn_id: str = "salesforce_default",
        daily_api_calls: int | None = None,
        batch_bytes: int = MAX_UPLOAD_BYTES,
        poll_interval: float = 5.0,
        job_timeout_minutes: float = 120.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        if not 1024 <= batch_bytes <= MAX_UPLOAD_BYTES:
            raise ValueError(f"batch_bytes must be between 1024 and {MAX_UPLOAD_BYTES}")

    def make_destination(self, inputs: SyncRunInputs) -> SyncDestination:
        hook = SalesforceBulkHook(self.salesforce_conn_id, self.daily_api_calls, "export")
        self._check_fields(hook)
        return SalesforceObjectDestination(
            hook,
            inputs.folder,
            self.salesforce_object,
            self.external_id_field,
            self.id_field,
            dict(self.mapping),
            self.membership_field,
            self.update_on_exit,
            self.batch_bytes,
            self.poll_interval,
            self.job_timeout_minutes * 60,
        )

    def _described(self, hook: SalesforceBulkHook, fresh: bool = False) -> dict[str, Any]:
        """The object's describe, read once a day per job (a Keep Updated run spends no call on it;
        a field removed since fails the ingest job with Salesforce's ``InvalidBatch`` message)."""
        cache = job_dir(self.job_id) / f"salesforce_describe_{self.salesforce_object}.json"
        try:
            if fresh:
                raise OSError("read the describe again")
            saved = json.loads(cache.read_text(encoding="utf-8"))
            if time.time() - float(saved["at"]) < DESCRIBE_MAX_AGE:
                return dict(saved["describe"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        described = hook.describe(self.salesforce_object)
        atomic_write_text(cache, json.dumps({"at": time.time(), "describe": described}))
        return described

    def _check_fields(self, hook: SalesforceBulkHook) -> None:
        """Every mapped field exists on the object and can be written; the key is an External ID."""
        wanted = [*self.mapping.values(), *([self.membership_field] if self.membership_field else [])]
        fields = {f["name"]: f for f in self._described(hook).get("fields") or []}
        if not set([self.external_id_field, *wanted]) <= set(fields):  # a field added since the last read
            fields = {f["name"]: f for f in self._described(hook, fresh=True).get("fields") or []}
        where = f"Salesforce object {self.salesforce_object!r}"
        key = fields.get(self.external_id_field)
        external = sorted(n for n, f in fields.items() if f.get("externalId"))
        if key is None or not (key.get("externalId") or self.external_id_field == "Id"):
            raise SalesforceConfigError(
                f"external_id_field {self.external_id_field!r} is not an External ID field of {where}; "
                f"External ID fields: {external or 'none'} "
                "(an administrator marks a field External ID under Setup > Object Manager)"
            )
        for name in wanted:
            spec = fields.get(name)
            if spec is None:
                raise SalesforceConfigError(
                    f"mapping names Salesforce field {name!r}, which {where} does not have; fields: "
                    f"{', '.join(sorted(fields)[:40])}"
                )
            if not (spec.get("createable") or spec.get("updateable")):
                raise SalesforceConfigError(
                    f"field {name!r} of {where} cannot be written; remove it from mapping"
                )
