"""Mailchimp and SendGrid exports: API calls of a first sync and of a 1% churn run, against the ideal.

Run:  .venv/bin/python -m bench.mailchimp_sendgrid [--members 100000] [--churn 0.01]

A synthetic snapshot of ``--members`` members goes through the sync engine and each deliver
operator (no Lytics scan) against the loopback stand-ins; a second snapshot with ``--churn`` of
the members replaced is the Keep Updated run. The ideal is ``ceil(members sent / the vendor's max
batch)``: Mailchimp 500 members per request (its published member batch, the batch subscribe; the
Batch endpoint publishes no cap), SendGrid 30,000 contacts per ``PUT /v3/marketing/contacts``.
"Calls" are every request to the vendor: set-up (audience, field and segment look-ups, made on
the first sync and kept in the job's state for later runs), submits, status polls and result
downloads. Mailchimp has no per-second limit but a cap of 10 requests in
flight per key: the run shows the peak the stand-in saw and its 429s. Prints
``| measure | value | notes |`` rows.
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

DESTINATION_BENCH = "Mailchimp / SendGrid"
MAILCHIMP_MAX_BATCH = 500
SENDGRID_MAX_BATCH = 30_000


def members(start: int, count: int, audience_id: str) -> list[dict[str, Any]]:
    return [
        {
            "_uid": f"u{i}",
            "email": f"user{i}@example.com",
            "first_name": f"F{i}",
            "last_name": f"L{i}",
            "segments": ["bench", "all"],
        }
        for i in range(start, start + count)
    ]


def run(
    op: Any, job_id: str, snapshot: Path, previous: Path | None, run_id: str, work: Path
) -> tuple[dict, float]:
    from lytics_provider.pipeline.workarea import JobState
    from lytics_provider.sync.operator import SyncRunInputs

    folder = work / job_id / run_id
    folder.mkdir(parents=True, exist_ok=True)
    audience = {"id": "b" * 32, "name": "Bench", "slug": "bench"}
    inputs = SyncRunInputs(str(snapshot), audience, None, previous, False, folder, run_id, {})
    started = time.perf_counter()
    report = op.run_sync(inputs)
    JobState(job_id).update(last_run_id=run_id)  # the report task's commit: the ledger counts this run
    return report, time.perf_counter() - started


def ratio(calls: int, sent: int, max_batch: int) -> str:
    ideal = math.ceil(sent / max_batch)
    return f"{calls / ideal:.2f}x of ideal {ideal}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--churn", type=float, default=0.01)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="mc-sg-bench-"))
    os.environ["LYTICS_DATA_DIR"] = str(work / "data")

    from lytics_provider.transfers.lytics_to_mailchimp import LyticsToMailchimpOperator
    from lytics_provider.transfers.lytics_to_sendgrid import LyticsToSendGridOperator
    from lytics_sandbox.lytics import LyticsSandbox
    from lytics_sandbox.mailchimp import MailchimpSandbox
    from lytics_sandbox.sendgrid import SendGridSandbox
    from lytics_sandbox.synth import SyntheticAccount
    from tests.helpers import lytics_conn

    churn = max(1, int(args.members * args.churn))
    first = write_snapshot(work / "first.db", members(0, args.members, "b" * 32))
    second = write_snapshot(work / "second.db", members(churn, args.members, "b" * 32))
    rows: list[tuple[str, str, str]] = []
    with (
        MailchimpSandbox() as mc,
        SendGridSandbox() as sg,
        LyticsSandbox(SyntheticAccount(audiences={"bench": 10})) as ly,
    ):
        os.environ["AIRFLOW_CONN_LYTICS_DEFAULT"] = lytics_conn(ly.base_url)
        os.environ["AIRFLOW_CONN_MAILCHIMP_DEFAULT"] = json.dumps(mc.connection())
        os.environ["AIRFLOW_CONN_SENDGRID_DEFAULT"] = json.dumps(sg.connection())
        audience = mc.add_audience("Bench")

        def mailchimp() -> LyticsToMailchimpOperator:
            return LyticsToMailchimpOperator(
                task_id="deliver",
                job_id="mc",
                mailchimp_list=audience.id,
                tag="Bench",
                poll_interval=0.05,
                max_exit_fraction=1.0,
            )

        mc.reset_counters()
        report, seconds = run(mailchimp(), "mc", first, None, "r1", work)
        calls = mc.total_calls
        rows.append(
            (
                "Mailchimp first sync: API calls",
                str(calls),
                f"{ratio(calls, args.members, MAILCHIMP_MAX_BATCH)}; {report['batches']} batches of 1,000 "
                f"members (2,000 operations), submit + poll each; {seconds:.1f}s",
            )
        )
        rows.append(
            (
                "Mailchimp first sync: peak requests in flight",
                str(mc.peak_in_flight),
                f"limit 10 per API key; 429s: {mc.throttled}",
            )
        )
        mc.reset_counters()
        report, seconds = run(mailchimp(), "mc", second, first, "r2", work)
        sent = report["planned"]["adds"] + report["planned"]["removes"]
        calls = mc.total_calls
        rows.append(
            (
                "Mailchimp 1% churn run: API calls",
                str(calls),
                f"{ratio(calls, sent, MAILCHIMP_MAX_BATCH)} for {sent:,} members; audience id kept from "
                f"the first sync (no look-up); {report['batches']} batches (submit + poll) of up to "
                "1,000 members, enters and exits together",
            )
        )
        assert mc.tagged(audience.id, "Bench") == {
            f"user{i}@example.com" for i in range(churn, args.members + churn)
        }

        def sendgrid() -> LyticsToSendGridOperator:
            return LyticsToSendGridOperator(
                task_id="deliver",
                job_id="sg",
                segment_name="Bench",
                poll_interval=0.05,
                max_exit_fraction=1.0,
            )

        sg.reset()
        report, seconds = run(sendgrid(), "sg", first, None, "r1", work)
        calls = sg.total_calls
        rows.append(
            (
                "SendGrid first sync: API calls",
                str(calls),
                f"{ratio(calls, args.members, SENDGRID_MAX_BATCH)}; {report['jobs']} upsert jobs (PUT + poll "
                f"each) + 4 set-up calls (field, segment); {seconds:.1f}s",
            )
        )
        rows.append(
            (
                "SendGrid first sync: contact upserts (PUT)",
                str(len(sg.upserted)),
                ratio(len(sg.upserted), args.members, SENDGRID_MAX_BATCH),
            )
        )
        sg.reset_counters()
        before = len(sg.upserted)
        report, seconds = run(sendgrid(), "sg", second, first, "r2", work)
        sent = report["planned"]["adds"] + report["planned"]["removes"]
        calls = sg.total_calls
        rows.append(
            (
                "SendGrid 1% churn run: API calls",
                str(calls),
                f"{ratio(calls, sent, SENDGRID_MAX_BATCH)} for {sent:,} contacts; field and segment ids "
                "kept from the first sync (no look-ups); one upsert job carrying enters and exits: "
                "the PUT + the poll of its job. The ideal counts the PUT only, but the PUT only queues "
                "the import: the job status is SendGrid's confirmation that the contacts were written "
                "(exactly-once depends on it), so 2 calls is the least for one job",
            )
        )
        rows.append(
            (
                "SendGrid 1% churn run: contact upserts (PUT)",
                str(len(sg.upserted) - before),
                ratio(len(sg.upserted) - before, sent, SENDGRID_MAX_BATCH),
            )
        )
        segment = next(s["id"] for s in sg.segments.values() if s["name"] == "Bench")
        assert sg.segment_members(segment) == {
            f"user{i}@example.com" for i in range(churn, args.members + churn)
        }
    print("| measure | value | notes |")
    print("|---|---|---|")
    for measure, value, notes in rows:
        print(f"| {measure} | {value} | {notes} |")


if __name__ == "__main__":
    main()
