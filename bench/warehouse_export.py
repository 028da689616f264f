"""Benchmark: a large audience to S3 and to the Redshift staging path, against the raw scan read.

Run: ``.venv/bin/python bench/warehouse_export.py [--members 1000000] [--fields ...] [--no-copy]``

Servers: the Lytics sandbox and a moto S3 server each run in their own process (so their memory
is not counted); PostgreSQL on 127.0.0.1:5432 is used for the Redshift COPY + swap when it is
reachable (``COPY ... FROM STDIN`` of the staged object, as in the tests).

Phases, each timed on its own:

* ``raw scan read``: only reading every scan page through ``LyticsHook.scan_segment`` (baseline);
* ``scan → snapshot``: the ``scan`` task (pages committed to the SQLite snapshot);
* ``S3 export``: the ``deliver`` task of an S3 export (gzip CSV staged, uploaded with multipart);
* ``Redshift export``: stage typed gzip CSV → S3 → temp table COPY → swap (with PostgreSQL),
  or only the staging part without it.

Memory: peak RSS of this process during each phase, sampled every 20 ms from ``/proc/self/statm``
(RSS, not tracemalloc: it includes C buffers such as boto3's multipart parts).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Resident set size of this process."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


class PeakRss:
    """Sample RSS in a thread while a phase runs; ``peak`` is the highest value seen."""

    def __init__(self, every: float = 0.02) -> None:
        self.every = every
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.every)

    def __enter__(self) -> PeakRss:
        self.peak = rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def start(cmd: list[str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    wait_port(port)
    return proc


def phase(
    name: str, rows_of: Callable[[Any], int], fn: Callable[[], Any], results: list[dict[str, Any]]
) -> Any:
    with PeakRss() as mem:
        started = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - started
    rows = rows_of(out)
    results.append({"phase": name, "rows": rows, "seconds": seconds, "peak_rss": mem.peak})
    print(f"  {name}: {rows:,} rows in {seconds:,.1f}s", flush=True)
    return out


def postgres_available() -> bool:
    try:
        import psycopg2

        psycopg2.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", connect_timeout=3).close()
        return True
    except Exception:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument(
        "--fields",
        default="_uid,email,first_name,last_name,city,country,score_engagement,scores,segments,last_active_ts",
        help="comma-separated fields to export",
    )
    parser.add_argument(
        "--no-copy", action="store_true", help="Redshift path: stage only, no PostgreSQL COPY"
    )
    args = parser.parse_args()
    fields = args.fields.split(",")

    lytics_port, moto_port = free_port(), free_port()
    python = sys.executable
    procs = [
        start(
            [
                python,
                "-m",
                "lytics_sandbox",
                "--no-sftp",
                "--lytics-port",
                str(lytics_port),
                "--audience",
                f"bench={args.members}",
            ],
            lytics_port,
        ),
        start([python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)], moto_port),
    ]
    results: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run(args, fields, lytics_port, moto_port, tmp, results)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
    print()
    print(
        f"{args.members:,} members, {len(fields)} fields; peak RSS of this process per phase (20 ms samples)"
    )
    print(f"{'phase':<34}{'rows':>12}{'seconds':>10}{'rows/s':>12}{'peak RSS MiB':>14}")
    for r in results:
        rate = r["rows"] / r["seconds"] if r["seconds"] else 0.0
        mib = r["peak_rss"] / 2**20
        print(f"{r['phase']:<34}{r['rows']:>12,}{r['seconds']:>10.1f}{rate:>12,.0f}{mib:>14.0f}")
    return 0


def run(args: Any, fields: list[str], lytics_port: int, moto_port: int, tmp: str, results: list) -> None:
    import boto3

    from lytics_provider.hooks.lytics import LyticsHook
    from lytics_provider.operators.lytics import LyticsAudienceScanOperator
    from lytics_provider.transfers.lytics_to_redshift import LyticsToRedshiftOperator
    from lytics_provider.transfers.lytics_to_s3 import LyticsToS3Operator
    from tests.helpers import lytics_conn, make_context, run_task

    endpoint = f"http://127.0.0.1:{moto_port}"
    os.environ["AIRFLOW_CONN_LYTICS_DEFAULT"] = lytics_conn(f"http://127.0.0.1:{lytics_port}")
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
    )
    os.environ["LYTICS_DATA_DIR"] = tmp
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket="bench")

    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    S3Hook(aws_conn_id="aws_default").get_conn()  # warm-up: provider import and client set-up, untimed

    def raw_scan() -> int:
        hook = LyticsHook()
        segment = hook.get_segment("bench")
        return sum(len(page.members) for page in hook.scan_segment(segment["id"], fields=fields))

    phase("raw scan read (baseline)", lambda n: n, raw_scan, results)
    context = make_context(run_id="bench__warehouse")
    scan_op = LyticsAudienceScanOperator(task_id="scan", audience="bench", job_id="bench", fields=fields)
    phase("scan -> snapshot", lambda r: r["members"], lambda: run_task(scan_op, context), results)
    s3_op = LyticsToS3Operator(task_id="deliver", job_id="bench", bucket="bench", fields=fields)
    phase("S3 export (gzip CSV, multipart)", lambda r: r["rows"], lambda: run_task(s3_op, context), results)

    copy = not args.no_copy and postgres_available()
    if copy:
        import psycopg2

        conn = psycopg2.connect("host=127.0.0.1 port=5432 user=postgres dbname=test")
        conn.autocommit = True
        conn.cursor().execute("DROP SCHEMA IF EXISTS lytics_bench CASCADE; CREATE SCHEMA lytics_bench")
        conn.close()
        os.environ["AIRFLOW_CONN_REDSHIFT_DEFAULT"] = json.dumps(
            {
                "conn_type": "postgres",
                "host": "127.0.0.1",
                "port": 5432,
                "login": "postgres",
                "schema": "test",
            }
        )
        rs_op = LyticsToRedshiftOperator(
            task_id="deliver",
            job_id="bench",
            s3_bucket="bench",
            fields=fields,
            copy_method="stdin",
            schema_name="lytics_bench",
        )
        name = "Redshift export (stage+COPY+swap)"
    else:
        rs_op = _stage_only_class()(task_id="deliver", job_id="bench", s3_bucket="bench", fields=fields)
        name = "Redshift staging (typed CSV -> S3)"
    phase(name, lambda r: r["rows"], lambda: run_task(rs_op, context), results)
    if copy:
        import psycopg2

        conn = psycopg2.connect("host=127.0.0.1 port=5432 user=postgres dbname=test")
        conn.autocommit = True
        conn.cursor().execute("DROP SCHEMA IF EXISTS lytics_bench CASCADE")
        conn.close()


def _stage_only_class() -> type:
    from lytics_provider.transfers.lytics_to_redshift import LyticsToRedshiftOperator

    class StageOnly(LyticsToRedshiftOperator):
        """The Redshift path up to the staged S3 object (no database)."""

        def deliver(self, context: Any) -> dict[str, Any]:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            from lytics_provider.pipeline.warehouse_types import plan_columns

            columns = plan_columns(self.schema_fields(), self.fields, "redshift")
            table = self.table_name()
            with self.rejects() as rejects:
                staged = self.stage_warehouse_csv(columns, f"{table}_{self.stamp}.csv.gz", rejects)
            S3Hook(aws_conn_id=self.aws_conn_id).load_file(
                staged.path, self._staging_key(table), self.s3_bucket, replace=True
            )
            staged.path.unlink()
            return {"rows": staged.rows}

    return StageOnly


if __name__ == "__main__":
    raise SystemExit(main())
