"""Braze, Iterable and Customer.io exports: API calls per first sync and churn run, achieved rate.

Run:  .venv/bin/python -m bench.braze_iterable_customerio [--members 100000] [--churn 0.01]
      [--braze-limit 24 3] [--cio-limit 1 1]

Synthetic snapshots go through the sync engine and each destination's deliver operator (no
Lytics scan), against the loopback stand-ins. First sync: every member is sent; churn run: a
snapshot with ``--churn`` of the members replaced (as many enters as exits). Calls are compared
with the ideal ``ceil(n / the request's batch)`` per kind of work: Braze 75 attribute objects per
``/users/track`` (enters and exits), Iterable the job's 1,000 subscribers per subscribe /
unsubscribe (exits too), Customer.io the job's 1,000 identifies per ``/api/v2/batch`` (enters
only; exits send nothing).

Rate: Braze and Customer.io run with their stand-in enforcing a fixed-window limit (429 over it)
and the connection's call budget set to the same figures (plus the hook's margin). The
documented limits (Braze 3,000 per 3 s, Customer.io 100 per 1 s) are more than this loopback
client sends in one process, so the defaults are scaled down until the limit binds
(``--braze-limit 3000 3`` runs the documented one). The achieved fraction is the requests the
stand-in accepted divided by what the limit allows in
the windows the first sync spanned (goal >= 0.9 with no 429).
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

DESTINATION_BENCH = "Braze / Iterable / Customer.io"


def members(start: int, count: int) -> list[dict[str, Any]]:
    return [
        {"_uid": f"u{i}", "email": f"user{i}@example.com", "user_id": f"id{i}", "first_name": f"F{i}"}
        for i in range(start, start + count)
    ]


def run(
    op: Any, work: Path, snapshot: Path, previous: Path | None, run_id: str
) -> tuple[dict[str, Any], float]:
    """One delivery through the sync engine; the run is then recorded as committed."""
    from lytics_provider.pipeline.workarea import JobState
    from lytics_provider.sync.operator import SyncRunInputs

    folder = work / op.job_id / run_id
    folder.mkdir(parents=True, exist_ok=True)
    inputs = SyncRunInputs(str(snapshot), {"slug": "bench"}, None, previous, False, folder, run_id, {})
    started = time.perf_counter()
    report = op.run_sync(inputs)
    seconds = time.perf_counter() - started
    JobState(op.job_id).update(last_run_id=run_id)  # what the report task commits
    return report, seconds


def budget_use(accepted_at: list[float], limit: int, window: float) -> tuple[float, float]:
    """(requests per second, share of the limit used over the fixed windows the sync spanned)."""
    if len(accepted_at) < 2:
        return 0.0, 0.0
    first, last = accepted_at[0], accepted_at[-1]
    windows = int(last // window) - int(first // window) + 1
    return (len(accepted_at) - 1) / max(last - first, 1e-9), len(accepted_at) / (windows * limit)


Row = tuple[str, str, str]


def calls_rows(
    name: str, first_calls: int, first_ideal: int, churn_calls: int, churn_ideal: int, note: str
) -> list[Row]:
    return [
        (
            f"{name}: calls, first sync",
            f"{first_calls:,}",
            f"ideal {first_ideal:,}; {first_calls / first_ideal:.3f}x ideal",
        ),
        (
            f"{name}: calls, churn run",
            f"{churn_calls:,}",
            f"ideal {churn_ideal:,}; {churn_calls / churn_ideal:.3f}x ideal (goal <= 1.05x); {note}",
        ),
    ]


def bench_braze(args: Any, work: Path, first: Path, second: Path, churn: int) -> list[Row]:
    from lytics_provider.transfers.lytics_to_braze import LyticsToBrazeOperator
    from lytics_sandbox.braze import BrazeSandbox

    limit, window = int(args.braze_limit[0]), float(args.braze_limit[1])
    with BrazeSandbox(api_keys=("bench-key",), rate_limit=(limit, window)) as stand:
        conn = stand.connection("bench-key")
        conn["extra"].update(calls_per_hour=limit, budget_window_seconds=window)
        os.environ["AIRFLOW_CONN_BRAZE_BENCH"] = json.dumps(conn)

        def op() -> Any:
            return LyticsToBrazeOperator(
                task_id="deliver", job_id="braze_bench", braze_conn_id="braze_bench", email="email"
            )

        report, seconds = run(op(), work, first, None, "first")
        assert report["outcomes"] == {"add:Set": args.members}, report["outcomes"]
        first_calls = stand.calls_to("users_track")
        rate, share = budget_use(stand.accepted_at, limit, window)
        limited_first = stand.rate_limited
        stand.reset_counters()
        report, _ = run(op(), work, second, first, "churn")
        churn_calls = stand.calls_to("users_track")
        ideal = math.ceil(churn / 75) * 2
    rows = calls_rows(
        "Braze",
        first_calls,
        math.ceil(args.members / 75),
        churn_calls,
        ideal,
        f"{churn:,} enters set true + {churn:,} exits set false, 75 objects per request",
    )
    rows.append(
        (
            "Braze: achieved rate, first sync",
            f"{share:.3f} of the limit",
            f"{rate:,.1f} requests/s against {limit:,} per {window:g} s enforced by the stand-in "
            f"({limit / window:,.1f}/s); {limited_first} x 429; {seconds:.1f} s for plan + send",
        )
    )
    return rows


def bench_iterable(args: Any, work: Path, first: Path, second: Path, churn: int) -> list[Row]:
    from lytics_provider.transfers.lytics_to_iterable import LyticsToIterableListOperator
    from lytics_sandbox.iterable import IterableSandbox

    with IterableSandbox(api_keys=("bench-key",)) as stand:
        os.environ["AIRFLOW_CONN_ITERABLE_BENCH"] = json.dumps(stand.connection("bench-key"))

        def op() -> Any:
            return LyticsToIterableListOperator(
                task_id="deliver",
                job_id="iterable_bench",
                iterable_conn_id="iterable_bench",
                list_name="Bench",
            )

        report, _ = run(op(), work, first, None, "first")
        assert report["outcomes"] == {"add:Subscribed": args.members}, report["outcomes"]

        def bulk() -> int:
            return stand.calls_to("lists_subscribe") + stand.calls_to("lists_unsubscribe")

        first_calls = bulk()
        stand.reset_counters()
        run(op(), work, second, first, "churn")
        churn_calls = bulk()
    return calls_rows(
        "Iterable",
        first_calls,
        math.ceil(args.members / 1000),
        churn_calls,
        math.ceil(churn / 1000) * 2,
        f"{churn:,} subscribes + {churn:,} unsubscribes, 1,000 per request; list lookups not counted",
    )


def bench_customerio(args: Any, work: Path, first: Path, second: Path, churn: int) -> list[Row]:
    from lytics_provider.transfers.lytics_to_customerio import LyticsToCustomerIOOperator
    from lytics_sandbox.customerio import CustomerIOSandbox

    limit, window = int(args.cio_limit[0]), float(args.cio_limit[1])
    with CustomerIOSandbox(rate_limit=(limit, window)) as stand:
        conn = stand.connection()
        conn["extra"] = {"calls_per_hour": limit, "budget_window_seconds": window}
        os.environ["AIRFLOW_CONN_CUSTOMERIO_BENCH"] = json.dumps(conn)

        def op() -> Any:
            return LyticsToCustomerIOOperator(
                task_id="deliver",
                job_id="cio_bench",
                customerio_conn_id="customerio_bench",
                fields=["first_name"],
                batch_size=args.cio_batch,
            )

        report, seconds = run(op(), work, first, None, "first")
        assert report["outcomes"] == {"add:Identified": args.members}, report["outcomes"]
        first_calls = stand.calls_to("batch")
        rate, share = budget_use(stand.accepted_at, limit, window)
        limited_first = stand.rate_limited
        stand.reset_counters()
        run(op(), work, second, first, "churn")
        churn_calls = stand.calls_to("batch")
    rows = calls_rows(
        "Customer.io",
        first_calls,
        math.ceil(args.members / args.cio_batch),
        churn_calls,
        math.ceil(churn / args.cio_batch),
        f"{churn:,} enters identified, exits send nothing; {args.cio_batch:,} per request (under 500 KB)",
    )
    rows.append(
        (
            "Customer.io: achieved rate, first sync",
            f"{share:.3f} of the limit",
            f"{rate:,.1f} requests/s against {limit:,} per {window:g} s enforced by the stand-in; "
            f"{limited_first} x 429; {seconds:.1f} s for plan + send",
        )
    )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument(
        "--braze-limit", nargs=2, type=float, default=[24, 3], metavar=("REQUESTS", "SECONDS")
    )
    parser.add_argument("--cio-limit", nargs=2, type=float, default=[1, 1], metavar=("REQUESTS", "SECONDS"))
    parser.add_argument("--cio-batch", type=int, default=1000)
    parser.add_argument("--only", nargs="+", choices=["braze", "iterable", "customerio"])
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bic-bench-"))
    os.environ["LYTICS_DATA_DIR"] = str(work / "data")
    churn = max(1, int(args.members * args.churn))
    first = write_snapshot(work / "first.db", members(0, args.members))
    second = write_snapshot(work / "second.db", members(churn, args.members))  # churn exits, churn enters
    rows: list[Row] = []
    benches = {"braze": bench_braze, "iterable": bench_iterable, "customerio": bench_customerio}
    for name, bench in benches.items():
        if not args.only or name in args.only:
            rows += bench(args, work, first, second, churn)
    print("| measure | value | notes |")
    print("|---|---|---|")
    for measure, value, notes in rows:
        print(f"| {measure} | {value} | {notes} |")


if __name__ == "__main__":
    main()
