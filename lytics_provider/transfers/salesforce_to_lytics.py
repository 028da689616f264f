"""Import Salesforce objects into Lytics streams through Bulk API 2.0 query jobs.

"Import Leads & Opportunities" reads Account, Contact, Lead and Opportunity into
``salesforce_accounts``, ``salesforce_contacts``, ``salesforce_leads`` and
``salesforce_opportunities``; "Import Custom Object" reads one object's selected fields into the
stream the job names. Per object and run:

1. a query job (``POST jobs/query``): ``SELECT <fields> FROM <object> WHERE SystemModstamp >= <watermark>
   ORDER BY SystemModstamp`` (no ``WHERE`` on the first run). Its id is kept in the run folder, so a
   retried task reads the job it started instead of creating another;
2. its results, page by page (``maxRecords``, ``Sforce-Locator``), streamed to CSV files in the run
   folder; records already imported at the watermark's exact time are left out of the page;
3. each page into the stream through the ingest engine (``files.ingest``: bad rows in a rejects file
   with the reason, a checkpoint after every batch Lytics acknowledged);
4. once Lytics accepted every page, the object's new watermark (the newest ``SystemModstamp`` and
   the ids at that time) is committed to the job state. A failed run commits nothing; the next one
   reads from the old watermark again.

"Lytics will import all custom fields": with ``include_custom_fields`` every ``__c`` field the
object's describe lists is added to the standard fields. Every call draws on the import's share of
the daily API allocation (``daily_api_calls``; see :mod:`lytics_provider.hooks.salesforce`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.files.ingest import FileCheckpoint, StreamWriter, ingest_file
from lytics_provider.files.readers import ReadOptions
from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.hooks.salesforce import SalesforceBulkHook
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.lytics import run_param
from lytics_provider.pipeline.rejects import RejectsWriter
from lytics_provider.pipeline.retention import prune_job_runs
from lytics_provider.pipeline.workarea import JobState, atomic_write_text, run_dir

WATERMARKS = "salesforce_watermarks"
STREAMS = {
    "Account": "salesforce_accounts",
    "Contact": "salesforce_contacts",
    "Lead": "salesforce_leads",
    "Opportunity": "salesforce_opportunities",
}
_COMMON = ("Id", "CreatedDate", "SystemModstamp")
DEFAULT_FIELDS: dict[str, tuple[str, ...]] = {
    "Account": (
        *_COMMON,
        "Name",
        "Website",
        "Industry",
        "Type",
        "Phone",
        "BillingCity",
        "BillingCountry",
        "NumberOfEmployees",
        "AnnualRevenue",
        "OwnerId",
    ),
    "Contact": (
        *_COMMON,
        "AccountId",
        "Email",
        "FirstName",
        "LastName",
        "Title",
        "Phone",
        "MobilePhone",
        "LeadSource",
        "MailingCity",
        "MailingCountry",
        "HasOptedOutOfEmail",
        "OwnerId",
    ),
    "Lead": (
        *_COMMON,
        "Email",
        "FirstName",
        "LastName",
        "Company",
        "Title",
        "Status",
        "LeadSource",
        "Phone",
        "City",
        "Country",
        "IsConverted",
        "ConvertedContactId",
        "HasOptedOutOfEmail",
        "OwnerId",
    ),
    "Opportunity": (
        *_COMMON,
        "AccountId",
        "Name",
        "StageName",
        "Amount",
        "CloseDate",
        "Probability",
        "LeadSource",
        "Type",
        "IsClosed",
        "IsWon",
        "OwnerId",
    ),
}


class SalesforceImportConfigError(AirflowFailException):
    """A configured object or field does not exist in the org; retrying does not help."""


class SalesforceToLyticsOperator(BaseOperator):
    """Import Salesforce objects into Lytics streams; see the module docstring.

    :param job_id: the job (run folder, committed watermarks).
    :param streams: object API name → Lytics stream.
    :param object_fields: object API name → fields to read (default: the standard fields of
        :data:`DEFAULT_FIELDS`; ``Id`` and ``SystemModstamp`` are always read).
    :param include_custom_fields: also read every custom (``__c``) field of the object.
    :param salesforce_conn_id: the ``salesforce`` connection.
    :param daily_api_calls: the import's share of the org's daily API requests.
    :param page_size: records per results page (``maxRecords``).
    :param poll_interval: seconds between query job status reads.
    :param job_timeout_minutes: how long a query job is waited for (a retry reconnects to it).
    :param lytics_conn_id: the Lytics connection.
    """

    def __init__(
        self,
        *,
        job_id: str,
        streams: dict[str, str],
        object_fields: dict[str, list[str]] | None = None,
        include_custom_fields: bool = True,
        salesforce_conn_id: str = "salesforce_default",
        daily_api_calls: int | None = None,
        page_size: int = 50000,
        poll_interval: float = 5.0,
        job_timeout_minutes: float = 120.0,
        lytics_conn_id: str = LyticsHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())

    def execute(self, context: Context) -> dict[str, Any]:
        dry_run = run_param(context, "dry_run")
        hook = SalesforceBulkHook(self.salesforce_conn_id, self.daily_api_calls, "import")
        lytics = LyticsHook(self.lytics_conn_id)
        folder = run_dir(self.job_id, context["run_id"])
        state = JobState(self.job_id)
        report: dict[str, Any] = {"dry_run": dry_run, "objects": {}}
        for object_name, stream in self.streams.items():
            report["objects"][object_name] = self._import_object(
                hook, lytics, folder, state, object_name, stream, dry_run
            )
        report["salesforce_calls"] = hook.calls
        report["lytics_calls"] = lytics.calls
        report["api_usage"] = hook.api_usage
        self.log.info("Salesforce import: %s", report)
        if not dry_run:
            prune_job_runs(self.job_id, context["run_id"])
        return report

    # -- one object ----------------------------------------------------------------------------
    def select_fields(self, hook: SalesforceBulkHook, object_name: str) -> list[str]:
        """The fields to read: configured (or default) plus custom ones; unknown ones are an error."""
        described = {f["name"] for f in hook.describe(object_name).get("fields") or []}
        wanted = list((self.object_fields or {}).get(object_name) or DEFAULT_FIELDS.get(object_name) or ())
        configured = bool((self.object_fields or {}).get(object_name))
        unknown = [f for f in wanted if f not in described]
        if unknown and configured:
            raise SalesforceImportConfigError(
                f"fields of {object_name} name {unknown}, which the object does not have; fields: "
                f"{', '.join(sorted(described)[:40])}"
            )
        chosen = [f for f in wanted if f in described]
        if self.include_custom_fields:
            chosen += sorted(f for f in described if f.endswith("__c"))
        return list(dict.fromkeys(["Id", "SystemModstamp", *chosen]))

    def _import_object(
        self,
        hook: SalesforceBulkHook,
        lytics: LyticsHook,
        folder: Path,
        state: JobState,
        object_name: str,
        stream: str,
        dry_run: bool,
    ) -> dict[str, Any]:
        mark = (state.get(WATERMARKS) or {}).get(object_name) or {}
        progress_file = folder / f"salesforce_{object_name}.json"
        run = FileCheckpoint(progress_file).load() or {}
        if not run.get("job_id"):
            fields = self.select_fields(hook, object_name)
            soql = f"SELECT {', '.join(fields)} FROM {object_name}"
            if mark.get("ts"):
                soql += f" WHERE SystemModstamp >= {soql_time(mark['ts'])}"
            soql += " ORDER BY SystemModstamp"
            run = {"job_id": hook.create_query_job(soql)["id"], "pages": [], "locator": "", "complete": False}
            atomic_write_text(progress_file, json.dumps(run))
        else:
            self.log.info("Reconnecting to Salesforce query job %s for %s", run["job_id"], object_name)
        hook.wait(run["job_id"], "query", self.poll_interval, self.job_timeout_minutes * 60)
        newest = dict(run.get("newest") or mark)
        while not run["complete"]:
            number = len(run["pages"]) + 1
            raw = folder / f"salesforce_{object_name}_{number:04d}.raw.csv"
            page = hook.query_page(run["job_id"], run["locator"], raw, self.page_size)
            kept, newest = _filter_page(raw, raw.with_name(raw.name.replace(".raw", "")), mark, newest)
            raw.unlink(missing_ok=True)
            run["pages"].append({"file": raw.name.replace(".raw", ""), "records": page.records, "kept": kept})
            run.update(locator=page.locator, complete=not page.locator, newest=newest)
            atomic_write_text(progress_file, json.dumps(run))
        result = {
            "stream": stream,
            "job_id": run["job_id"],
            "records": 0,
            "sent": 0,
            "rejected": 0,
            "rejected_by_lytics": 0,
            "watermark": newest.get("ts"),
        }
        for page in run["pages"]:
            result["records"] += page["kept"]
            if dry_run or page.get("ingested"):
                continue
            path = folder / page["file"]
            writer = StreamWriter(lytics, stream, filename=f"salesforce:{object_name}")
            with RejectsWriter(folder / f"rejects_{object_name}.jsonl", logger=self.log) as rejects:
                done = ingest_file(
                    path,
                    page["file"],
                    writer,
                    FileCheckpoint(folder / f"salesforce_{object_name}_ingest.json"),
                    rejects,
                    ReadOptions("csv", ",", row_width="no_extra", empty_cells="drop", numbering="row"),
                    logger=self.log,
                )
            result["sent"] += done.sent
            result["rejected"] += done.rejected
            result["rejected_by_lytics"] += done.lytics_rejected
            page["ingested"] = True
            atomic_write_text(progress_file, json.dumps(run))
        if not dry_run and newest.get("ts") and newest != mark:
            marks = dict(state.get(WATERMARKS) or {})
            marks[object_name] = newest
            state.update(**{WATERMARKS: marks})
        return result


def soql_time(stamp: str) -> str:
    """A SOQL datetime literal for a ``SystemModstamp`` value, cut to the second (``...T10:00:00Z``):
    the query reads from the start of that second and the page filter drops what was imported."""
    return stamp[:19] + "Z"


def _filter_page(
    raw: Path, out: Path, mark: dict[str, Any], newest: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """Copy a page leaving out records older than the watermark and those imported at its time;
    return how many were kept and the newest ``{"ts", "ids"}`` seen so far."""
    seen_at_mark = set(mark.get("ids") or ())
    kept = 0
    ts, ids = newest.get("ts"), set(newest.get("ids") or ())
    with (
        raw.open(encoding="utf-8", newline="") as source,
        out.open("w", encoding="utf-8", newline="") as sink,
    ):
        reader = csv.DictReader(source)
        writer = csv.DictWriter(sink, fieldnames=list(reader.fieldnames or []), lineterminator="\n")
        writer.writeheader()
        for row in reader:
            stamp, record_id = row.get("SystemModstamp") or "", row.get("Id") or ""
            if mark.get("ts") and (stamp < mark["ts"] or (stamp == mark["ts"] and record_id in seen_at_mark)):
                continue
            writer.writerow(row)
            kept += 1
            if ts is None or stamp > ts:
                ts, ids = stamp, {record_id}
            elif stamp == ts:
                ids.add(record_id)
    return kept, {"ts": ts, "ids": sorted(ids)} if ts else {}


__all__: Sequence[str] = ("DEFAULT_FIELDS", "STREAMS", "SalesforceToLyticsOperator")
