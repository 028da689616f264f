"""Benchmark: Salesforce Export Audiences API calls for a first sync and a churn run, against the ideal.

Run: ``.venv/bin/python -m bench.salesforce [--members 100000] [--churn 0.01]``

A synthetic snapshot of ``--members`` members goes through the sync engine and the Salesforce
deliver operator (Bulk API 2.0 upsert jobs) against the HTTPS stand-in, with the org's daily API
request limit enforced (``--daily-limit``, ``Sforce-Limit-Info`` and ``403
REQUEST_LIMIT_EXCEEDED``). A second run against a snapshot with ``--churn`` of the members replaced
sends the enters and the exits. The object's describe (the field check) is read once a day per job,
so the first sync spends one call on it and the churn run none. The ideal is ``ceil(CSV bytes / 100
MB)`` ingest jobs (Salesforce's largest upload) at six calls each (create, upload, close, one status
read, successful and failed results). Salesforce publishes no per-second or per-minute limit for
these calls (only the rolling 24-hour allocation), so the rate row reports the share of the daily
allocation used instead.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.snapshots import write_snapshot

DESTINATION_BENCH = "Salesforce"
CALLS_PER_JOB = 6
UPLOAD_LIMIT = 100 * 1024 * 1024


def members(start: int, count: int) -> list[dict[str, Any]]:
    return [
        {"_uid": f"u{i}", "email": f"user{i}@example.com", "first_name": f"F{i}"}
        for i in range(start, start + count)
    ]


def deliver(work: Path, snapshot: Path, previous: Path | None, run_id: str) -> tuple[dict[str, Any], float]:
    from lytics_provider.sync.operator import SyncRunInputs
    from lytics_provider.transfers.lytics_to_salesforce import LyticsToSalesforceOperator

    folder = work / run_id
    folder.mkdir(parents=True, exist_ok=True)
    op = LyticsToSalesforceOperator(
        task_id="deliver",
        job_id="bench",
        salesforce_object="Lytics_Member__c",
        external_id_field="Lytics_UID__c",
        mapping={"email": "Email__c", "first_name": "First_Name__c"},
        membership_field="In_Audience__c",
        poll_interval=0.01,
        max_exit_fraction=1.0,
    )
    inputs = SyncRunInputs(str(snapshot), {"slug": "bench"}, None, previous, False, folder, run_id, {})
    started = time.perf_counter()
    report = op.run_sync(inputs)
    return report, time.perf_counter() - started


def uploaded_bytes(work: Path, run_id: str) -> int:
    return sum(p.stat().st_size for p in (work / run_id).glob("salesforce-upsert-*.csv"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument("--daily-limit", type=int, default=15_000, help="the org's daily API requests")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="salesforce-bench-"))
    os.environ["LYTICS_DATA_DIR"] = str(work / "data")

    from lytics_provider.pipeline.workarea import JobState
    from lytics_sandbox.salesforce import SalesforceSandbox

    churn = max(1, int(args.members * args.churn))
    first = write_snapshot(work / "first.db", members(0, args.members))
    second = write_snapshot(work / "second.db", members(churn, args.members))  # churn exits, churn enters
    rows: list[tuple[str, str, str]] = []
    with SalesforceSandbox(work / "tls", daily_limit=args.daily_limit) as stand:
        os.environ["REQUESTS_CA_BUNDLE"] = str(stand.ca_file)
        os.environ["AIRFLOW_CONN_SALESFORCE_DEFAULT"] = json.dumps(stand.connection())
        for run_id, snapshot, previous in (("first", first, None), ("churn", second, first)):
            stand.reset_counters()
            before = stand.api_requests
            report, seconds = deliver(work, snapshot, previous, run_id)
            JobState("bench").update(last_run_id=run_id)  # the report task commits the run
            calls = stand.api_requests - before
            refused = sum(1 for e in stand.request_log if e["status"] == 403)
            size = uploaded_bytes(work, run_id)
            jobs = len(report["bulk_jobs"])
            ideal_jobs = max(1, math.ceil(size / UPLOAD_LIMIT))
            ideal_calls = ideal_jobs * CALLS_PER_JOB
            outcomes = report["outcomes"]
            sent = sum(v for k, v in outcomes.items() if k.endswith((":Created", ":Updated")))
            what = (
                f"{args.members:,} members, first sync"
                if previous is None
                else f"{args.churn:.0%} churn run ({churn:,} enters + {churn:,} exits)"
            )
            describes = stand.calls.get("describe", 0)
            describe_note = (
                f" ({describes} of the calls: the daily field check, describe)" if describes else ""
            )
            by_route = ", ".join(f"{k} {v}" for k, v in sorted(stand.calls.items()) if k != "token")
            rows.append(
                (
                    f"API calls, {what}",
                    f"{calls:,}",
                    f"{sent:,} rows upserted in {jobs} ingest job(s), {size / 1e6:.1f} MB of CSV; ideal "
                    f"ceil(bytes / 100 MB) = {ideal_jobs} job(s) x {CALLS_PER_JOB} calls = {ideal_calls}; "
                    f"{calls / ideal_calls:.2f}x ideal{describe_note}; "
                    f"{by_route}; {seconds:.1f} s",
                )
            )
            rows.append(
                (
                    f"ingest jobs (uploads), {what}",
                    f"{jobs}",
                    f"ideal {ideal_jobs}; {jobs / ideal_jobs:.2f}x ideal (goal <= 1.05x)",
                )
            )
            rows.append(
                (
                    f"daily API allocation used, {what}",
                    f"{calls / args.daily_limit:.2%}",
                    f"{calls:,} of {args.daily_limit:,} requests per 24 h (limit enforced by the stand-in); "
                    f"{refused} REQUEST_LIMIT_EXCEEDED; Salesforce publishes no per-second limit",
                )
            )
    print("| measure | value | notes |")
    print("|---|---|---|")
    for measure, value, notes in rows:
        print(f"| {measure} | {value} | {notes} |")


if __name__ == "__main__":
    main()
