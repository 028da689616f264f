"""API calls of a Dotdigital Export Contacts job: a 100,000-member audience, then 1% churn.

Run:  .venv/bin/python bench/dotdigital_calls.py [--members 100000] [--churn 0.01]

Both services are the loopback sandboxes. Prints one row per run: members, enters, exits, the
Dotdigital calls the run made (by the sandbox's count) and the Lytics calls (scan pages).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--churn", type=float, default=0.01)
    args = parser.parse_args()
    os.environ.setdefault("LYTICS_DATA_DIR", tempfile.mkdtemp(prefix="dd-bench-"))

    from lytics_provider.operators import dotdigital as dd_ops
    from lytics_provider.operators.lytics import LyticsAudienceScanOperator, LyticsCommitRunOperator
    from lytics_sandbox.dotdigital import DotdigitalSandbox, connection_json
    from lytics_sandbox.lytics import LyticsSandbox
    from lytics_sandbox.synth import SyntheticAccount
    from tests.helpers import lytics_conn, make_context, run_task

    dd_ops._DotdigitalDeliveryOperator.sleep = staticmethod(lambda seconds: time.sleep(0.05))
    churn = max(1, int(args.members * args.churn))
    account = SyntheticAccount(audiences={"bench": args.members})
    account.set_churn("bench", exits=churn, enters=churn, changes=0)
    rows = []
    with LyticsSandbox(account) as lytics, DotdigitalSandbox() as dd:
        os.environ["AIRFLOW_CONN_LYTICS_DEFAULT"] = lytics_conn(lytics.base_url)
        os.environ["AIRFLOW_CONN_DOTDIGITAL_DEFAULT"] = connection_json(dd)
        for number, version in ((1, 0), (2, 1), (3, 2)):
            lytics.set_version("bench", version)
            lytics.reset_counters()
            dd.reset_counters()
            context = make_context(run_id=f"bench_{number}")
            started = time.perf_counter()
            scan = LyticsAudienceScanOperator(
                task_id="scan", audience="bench", job_id="bench", fields=["email"], digest_fields=["email"]
            )
            run_task(scan, context)
            deliver = dd_ops.DotdigitalExportContactsOperator(
                task_id="deliver", job_id="bench", create_address_book=True, poll_interval=0.05
            )
            result = run_task(deliver, context)
            run_task(LyticsCommitRunOperator(task_id="report", job_id="bench"), context)
            planned = result["planned"]
            rows.append(
                (
                    number,
                    lytics.audience("bench").size,
                    planned["enters"],
                    planned["exits"],
                    dd.total_calls,
                    lytics.total_calls,
                    time.perf_counter() - started,
                    dict(sorted(dd.calls.items())),
                )
            )
    print(
        f"{'run':>3} {'members':>9} {'enters':>8} {'exits':>7} {'Dotdigital calls':>17} "
        f"{'Lytics calls':>13} {'seconds':>8}"
    )
    for run, members, enters, exits, dd_calls, ly_calls, seconds, _ in rows:
        print(
            f"{run:>3} {members:>9,} {enters:>8,} {exits:>7,} {dd_calls:>17,} {ly_calls:>13,} {seconds:>8.1f}"
        )
    print("\nDotdigital calls by endpoint:")
    for run, *_, by_route in rows:
        print(f"  run {run}: " + ", ".join(f"{route} x{n}" for route, n in by_route.items()))


if __name__ == "__main__":
    main()
