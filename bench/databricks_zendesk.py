"""Databricks and Zendesk exports: calls for a first sync of 100,000 members and a 1% churn run.

Run:  .venv/bin/python bench/databricks_zendesk.py [--members 100000] [--churn 0.01]
      [--zendesk-limit 80] [--zendesk-window 10]

Every service is a loopback stand-in (Lytics, Zendesk over HTTPS, the Databricks statement API on
DuckDB with staging on moto). Rows ``| measure | value | notes |``:

- Zendesk: ``create_or_update_many`` calls against the ideal ``ceil(n / 100)`` (Zendesk's
  maximum per call) for the first sync and the churn run, all calls (job-status polls
  included), and the achieved request rate during the first sync as a fraction of the
  per-window limit enforced by the stand-in (429 + ``Retry-After`` above it). The window is
  scaled down from Zendesk's minute (``--zendesk-window`` seconds, ``--zendesk-limit`` calls) so
  the run takes minutes; the hook's shared budget uses the same window. The default limit (8/s)
  is below what the loopback stand-in serves on a small machine, so the budget, not the CPU,
  bounds the rate.
- Databricks: SQL statements per run against the ideal (one ``COPY INTO`` per run plus the fixed
  placeholder, count and replace statements); a replace export sends the whole audience each run.
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


DESTINATION_BENCH = "Databricks / Zendesk"


def _scan(audience: str, job: str, context: dict[str, Any], fields: list[str]) -> None:
    from lytics_provider.operators.lytics import LyticsAudienceScanOperator
    from tests.helpers import run_task

    scan = LyticsAudienceScanOperator(
        task_id="scan", audience=audience, job_id=job, fields=fields, digest_fields=fields, page_size=1000
    )
    run_task(scan, context)


def zendesk_rows(lytics: Any, args: argparse.Namespace) -> list[tuple[str, str, str]]:
    import json

    from lytics_provider.hooks.zendesk import ZendeskApiHook
    from lytics_provider.operators.lytics import LyticsCommitRunOperator
    from lytics_provider.transfers.lytics_to_zendesk import LyticsToZendeskUsersOperator
    from lytics_sandbox.tls import local_tls
    from lytics_sandbox.zendesk import ZendeskSandbox
    from tests.helpers import make_context, run_task

    tls = local_tls(Path(tempfile.mkdtemp(prefix="zd-bench-tls-")))
    ZendeskApiHook.budget_window = args.zendesk_window
    rows: list[tuple[str, str, str]] = []
    with ZendeskSandbox(per_minute=args.zendesk_limit, window=args.zendesk_window) as zd:
        zd.ssl_context = tls.server_context
        zd.stop()
        zd.start()
        os.environ["REQUESTS_CA_BUNDLE"] = str(tls.ca_file)
        os.environ["AIRFLOW_CONN_ZENDESK_DEFAULT"] = json.dumps(zd.connection())
        for number, version in ((1, 0), (2, 1)):
            lytics.set_version("bench", version)
            context = make_context(run_id=f"zd_bench_{number}")
            _scan("bench", "zd_bench", context, ["email", "first_name"])
            zd.writes.clear()
            zd.call_times.clear()
            zd.reset_counters()
            throttled = zd.throttled
            deliver = LyticsToZendeskUsersOperator(
                task_id="deliver",
                job_id="zd_bench",
                requests_per_minute=args.zendesk_limit,
                poll_interval=0.0,
                max_exit_fraction=1.0,
            )
            report = run_task(deliver, context)
            run_task(LyticsCommitRunOperator(task_id="report", job_id="zd_bench"), context)
            planned = report["planned"]
            ideal = math.ceil(planned["adds"] / 100) + math.ceil(planned["removes"] / 100)
            writes = len(zd.writes)
            label = "first sync" if number == 1 else f"{args.churn:.0%} churn run"
            rows.append(
                (
                    f"Zendesk create_or_update_many calls, {label}",
                    f"{writes} ({writes / ideal:.3f}x ideal {ideal})",
                    f"{planned['adds']} adds, {planned['removes']} removes; {zd.total_calls} calls with "
                    f"job-status polls; {zd.throttled - throttled} answered 429",
                )
            )
            if number == 1 and len(zd.call_times) > 1:
                span = zd.call_times[-1] - zd.call_times[0]
                limit_rate = args.zendesk_limit / args.zendesk_window
                achieved = (len(zd.call_times) - 1) / span if span else float("inf")
                rows.append(
                    (
                        "Zendesk request rate, first sync (fraction of the limit)",
                        f"{achieved / limit_rate:.3f}",
                        f"{achieved:.1f}/s of {limit_rate:.1f}/s ({args.zendesk_limit} per "
                        f"{args.zendesk_window:g}s window, scaled from the minute; a sliding window lets "
                        f"the first window's calls go at once, so the mean can sit just above it); "
                        f"{zd.throttled - throttled} answered 429",
                    )
                )
    return rows


def databricks_rows(lytics: Any, moto: str, args: argparse.Namespace) -> list[tuple[str, str, str]]:
    import json

    import boto3

    from lytics_provider.hooks.databricks import DatabricksStatementHook
    from lytics_provider.operators.lytics import LyticsCommitRunOperator
    from lytics_provider.transfers.lytics_to_databricks import LyticsToDatabricksOperator
    from lytics_sandbox.databricks import DatabricksSandbox
    from tests.helpers import make_context, run_task

    client = boto3.client(
        "s3",
        endpoint_url=moto,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket="bench-staging")
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": moto, "region_name": "us-east-1"},
        }
    )
    rows: list[tuple[str, str, str]] = []
    with DatabricksSandbox(s3_endpoint=moto) as dbx:
        dbx.create_schema("lytics", "bench")
        os.environ["AIRFLOW_CONN_DATABRICKS_DEFAULT"] = json.dumps(dbx.connection())
        DatabricksStatementHook.__init__.__kwdefaults__["poll_interval"] = 0.0
        for number, version in ((1, 0), (2, 1)):
            lytics.set_version("bench", version)
            context = make_context(run_id=f"dbx_bench_{number}")
            _scan("bench", "dbx_bench", context, ["email", "first_name"])
            dbx.executed.clear()
            dbx.reset_counters()
            started = time.perf_counter()
            deliver = LyticsToDatabricksOperator(
                task_id="deliver",
                job_id="dbx_bench",
                catalog="lytics",
                database="bench",
                s3_bucket="bench-staging",
                fields=["_uid", "email", "first_name"],
            )
            report = run_task(deliver, context)
            elapsed = time.perf_counter() - started
            run_task(LyticsCommitRunOperator(task_id="report", job_id="dbx_bench"), context)
            statements = len(dbx.executed)
            ideal = 6  # drop + create placeholder, COPY INTO, count, replace, drop placeholder
            label = "first sync" if number == 1 else f"{args.churn:.0%} churn run"
            rows.append(
                (
                    f"Databricks SQL statements, {label}",
                    f"{statements} ({statements / ideal:.3f}x ideal {ideal})",
                    f"{report['rows']} rows in one COPY INTO; {dbx.total_calls} API calls (submit, polls, "
                    f"results); {elapsed:.1f}s",
                )
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument("--zendesk-limit", type=int, default=80, help="calls per window at the stand-in")
    parser.add_argument("--zendesk-window", type=float, default=10.0, help="seconds (Zendesk: 60)")
    args = parser.parse_args(argv)
    os.environ.setdefault("LYTICS_DATA_DIR", tempfile.mkdtemp(prefix="dz-bench-"))

    from moto.server import ThreadedMotoServer

    from lytics_sandbox.lytics import LyticsSandbox
    from lytics_sandbox.synth import SyntheticAccount
    from tests.helpers import lytics_conn

    churn = max(1, int(args.members * args.churn / 2))
    account = SyntheticAccount(audiences={"bench": args.members})
    account.set_churn("bench", exits=churn, enters=churn, changes=0)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    try:
        with LyticsSandbox(account) as lytics:
            os.environ["AIRFLOW_CONN_LYTICS_DEFAULT"] = lytics_conn(lytics.base_url)
            rows = zendesk_rows(lytics, args) + databricks_rows(lytics, f"http://{host}:{port}", args)
    finally:
        moto.stop()
    print("| measure | value | notes |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
