"""Benchmark: export a 50,000-member audience to an iContact list through both sandboxes.

Run: ``.venv/bin/python bench/icontact_export.py [--members 50000] [--batch-size 500]``

Half the members carry an iContact Distinct ID; of the rest, every fifth exists in iContact
(found by email) and the others are created. Prints members, batches, iContact calls (by
endpoint), Lytics calls and the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()

    from lytics_provider.operators.lytics import LyticsAudienceScanOperator
    from lytics_provider.transfers.lytics_to_icontact import EXPORT_FIELDS, LyticsToIContactListOperator
    from tests.helpers import lytics_conn, make_context, run_task
    from tests.integration.test_icontact_export import SLUG, build_sandboxes

    lytics, icontact, _ = build_sandboxes(args.members)
    with tempfile.TemporaryDirectory() as tmp, lytics, icontact:
        os.environ["AIRFLOW_CONN_ICONTACT_DEFAULT"] = json.dumps(icontact.connection())
        os.environ["AIRFLOW_CONN_LYTICS_DEFAULT"] = lytics_conn(lytics.base_url)
        os.environ["LYTICS_DATA_DIR"] = tmp
        context = make_context(run_id="bench__icontact")
        started = time.perf_counter()
        scan = run_task(
            LyticsAudienceScanOperator(
                task_id="scan", audience=SLUG, job_id="bench", fields=list(EXPORT_FIELDS)
            ),
            context,
        )
        scanned = time.perf_counter()
        report = run_task(
            LyticsToIContactListOperator(
                task_id="deliver",
                job_id="bench",
                destination_list="Lytics Export",
                batch_size=args.batch_size,
            ),
            context,
        )
        done = time.perf_counter()
        subscribed = len(icontact.data.subscribers("777"))
        by_route = {k: v for k, v in sorted(icontact.calls.items())}
    print(f"members          {report['members']:,}")
    print(f"batches          {report['batches']:,} (batch size {args.batch_size})")
    print(f"subscribed       {report['subscribed']:,} (list now holds {subscribed:,})")
    created, found = report["contacts_created"], report["contacts_found_by_email"]
    print(f"contacts created {created:,}; found by email {found:,}")
    print(f"iContact calls   {report['icontact_calls']:,} {by_route}")
    print(f"Lytics calls     {scan['api_calls']:,} (segment + scan pages)")
    print(f"time             scan {scanned - started:.1f}s, deliver {done - scanned:.1f}s")
    return 0 if report["subscribed"] == report["members"] == args.members else 1


if __name__ == "__main__":
    sys.exit(main())
