"""Webhooks Audience Triggers: events per second to the TLS webhook receiver, and calls per churn run.

Run:  .venv/bin/python -m bench.webhooks [--members 100000] [--churn 0.01] [--batch-sizes 10 100]

A synthetic snapshot of ``--members`` members goes through the sync engine and the deliver operator
(no Lytics scan): the first run sends every member as an enter (Existing Users on), CloudEvents in
batches of Batch Size, to the loopback https receiver with OAuth 2.0 client credentials. A second
run against a snapshot with ``--churn`` of the members replaced sends the enters and exits; its
calls are compared with the ideal, ceil(enters / batch size) + ceil(exits / batch size).
Prints ``| measure | value | notes |`` rows; ratios are against the first batch size of this run.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.snapshots import write_snapshot

DESTINATION_BENCH = "Webhooks"


def members(start: int, count: int) -> list[dict[str, Any]]:
    return [
        {"_uid": f"u{i}", "email": f"user{i}@example.com", "first_name": f"F{i}", "score": i % 100}
        for i in range(start, start + count)
    ]


def deliver(
    work: Path, snapshot: Path, previous: Path | None, run_id: str, url: str, batch_size: int
) -> tuple[dict[str, Any], float]:
    from lytics_provider.operators import webhooks as webhook_operators
    from lytics_provider.sync.operator import SyncRunInputs

    webhook_operators.baseline_snapshot = lambda job_id: previous  # type: ignore[assignment]
    folder = work / run_id
    folder.mkdir(parents=True, exist_ok=True)
    op = webhook_operators.WebhookAudienceTriggersOperator(
        task_id="deliver",
        job_id=f"bench{batch_size}",
        webhook_url=url,
        cloud_events=True,
        existing_users=True,
        batch_events=True,
        batch_size=batch_size,
    )
    inputs = SyncRunInputs(str(snapshot), {"slug": "bench"}, None, previous, False, folder, run_id, {})
    started = time.perf_counter()
    report = op.run_sync(inputs)
    return report, time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[10, 100])
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="webhooks-bench-"))
    os.environ["LYTICS_DATA_DIR"] = str(work / "data")

    from lytics_sandbox.webhooks import WebhookReceiver, connection_json, make_tls

    churn = max(1, int(args.members * args.churn))
    first = write_snapshot(work / "first.db", members(0, args.members))
    second = write_snapshot(work / "second.db", members(churn, args.members))  # churn exits, churn enters
    rows: list[tuple[str, str, str]] = []
    baseline_rate: float | None = None
    with WebhookReceiver(make_tls(work / "tls"), auth="oauth2") as receiver:
        receiver.keep_bodies = False
        os.environ["AIRFLOW_CONN_WEBHOOKS_DEFAULT"] = connection_json(receiver)
        for size in args.batch_sizes:
            receiver.reset()
            receiver.keep_bodies = False
            report, seconds = deliver(work / f"b{size}", first, None, "first", receiver.url(), size)
            sent = report["outcomes"].get("enter:Sent", 0)
            assert len(receiver.events) == args.members == sent, "not every event arrived"
            rate = sent / seconds
            baseline_rate = baseline_rate or rate
            first_calls = receiver.calls_to("hook")
            rows.append(
                (
                    f"events/s, {args.members:,} enters, Batch Size {size}",
                    f"{rate:,.0f}",
                    f"{seconds:.1f} s for plan + send; {first_calls:,} requests; "
                    f"{rate / baseline_rate:.2f}x Batch Size {args.batch_sizes[0]}",
                )
            )
            receiver.reset()
            receiver.keep_bodies = False
            report, seconds = deliver(work / f"b{size}", second, first, "churn", receiver.url(), size)
            enters = report["outcomes"].get("enter:Sent", 0)
            exits = report["outcomes"].get("exit:Sent", 0)
            calls = receiver.calls_to("hook")
            ideal = math.ceil(enters / size) + math.ceil(exits / size)
            rows.append(
                (
                    f"calls, {args.churn:.0%} churn run, Batch Size {size}",
                    f"{calls:,}",
                    f"{enters:,} enters + {exits:,} exits; ideal ceil(changes / batch size) = {ideal:,}; "
                    f"{calls / ideal:.3f}x ideal (goal <= 1.05x); {receiver.duplicate_deliveries} duplicates",
                )
            )
    print("| measure | value | notes |")
    print("|---|---|---|")
    for measure, value, notes in rows:
        print(f"| {measure} | {value} | {notes} |")


if __name__ == "__main__":
    main()
