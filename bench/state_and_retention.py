"""Disk kept by retention, and the cost of keeping the baseline in object storage.

``.venv/bin/python -m bench.state_and_retention [--members 200000] [--scan-members 1500000]
[--page-delay 0.005]``

(a) Retention: five Keep Updated runs of the Mapp SFTP job (the DAG built from
    ``include/jobs/mapp_high_value_daily.yaml``: ``scan`` → ``deliver`` → ``report``) against the
    Lytics and SFTP sandboxes, 1% of the audience entering, leaving and changing between runs.
    Reports the data dir after the five runs and its peak during a run, against one snapshot.
(b) State in object storage: the bare scan of a 1.5M-member audience (the sandbox in its own
    process, as ``bench.mapp_file_drop`` runs it) into a snapshot, then that snapshot uploaded
    as a baseline (``state_store.upload_baseline``) to a moto S3 server in its own process and
    downloaded back (``download_baseline``, what a new worker does), against the scan time with
    no API latency and with ``--page-delay`` seconds per page (as ``bench.mapp_file_drop``).
    Also the compression candidates on the same snapshot (zstandard is not installed here).

Prints Markdown table rows ``| measure | value | notes |``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from bench.processes import REPO, moto_server

JOB_FILE = REPO / "include" / "jobs" / "mapp_high_value_daily.yaml"
DAG_ID = "lytics_mapp_high_value_daily"
AUDIENCE = "high_value"


def _mb(size: float) -> str:
    return f"{size / 1e6:,.1f} MB"


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _context(run_id: str, params: dict[str, Any]) -> dict[str, Any]:
    import pendulum

    class _TaskInstance:
        def __init__(self) -> None:
            self.xcoms: dict[str, Any] = {}

        def xcom_pull(self, task_ids: str | None = None, key: str = "return_value", **_: Any) -> Any:
            return self.xcoms.get(task_ids or "")

    logical = pendulum.now("UTC").replace(microsecond=0)
    return {
        "run_id": run_id,
        "params": dict(params),
        "ti": _TaskInstance(),
        "logical_date": logical,
        "data_interval_start": logical,
        "data_interval_end": logical,
        "dag_run": None,
    }


# -- (a) retention over five runs ----------------------------------------------------------------
def bench_retention(members: int, workdir: Path) -> list[tuple[str, str, str]]:
    """Five runs of the Mapp DAG with 1% churn between them; data dir sizes against one snapshot."""
    import jinja2
    import yaml

    from lytics_provider.jobs.dag_builder import build_dags
    from lytics_provider.pipeline.workarea import safe_name
    from lytics_sandbox.lytics import LyticsSandbox
    from lytics_sandbox.sftp import SFTPSandbox
    from lytics_sandbox.synth import SyntheticAccount

    config = yaml.safe_load(JOB_FILE.read_text())
    churn = max(1, members // 100)
    account = SyntheticAccount(audiences={AUDIENCE: members})
    account.set_churn(AUDIENCE, exits=churn, enters=churn, changes=churn)
    sftp_root = workdir / "sftp"
    (sftp_root / str(config.get("folder") or "").strip("/")).mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    os.environ["LYTICS_DATA_DIR"] = str(data)
    os.environ.pop("LYTICS_STATE_URL", None)
    sftp = SFTPSandbox(sftp_root)
    host, port = sftp.start()
    rows: list[tuple[str, str, str]] = []
    try:
        with LyticsSandbox(account) as lytics:
            os.environ["AIRFLOW_CONN_LYTICS_DEFAULT"] = json.dumps(
                {"conn_type": "lytics", "host": lytics.base_url, "password": "sandbox-token"}
            )
            os.environ[f"AIRFLOW_CONN_{config['sftp_conn_id'].upper()}"] = json.dumps(
                {
                    "conn_type": "sftp",
                    "host": host,
                    "port": port,
                    "login": sftp.username,
                    "password": sftp.password,
                    "extra": {"no_host_key_check": True, "compress": False},
                }
            )
            jobs = workdir / "jobs"
            jobs.mkdir()
            shutil.copy(JOB_FILE, jobs / JOB_FILE.name)
            dag = build_dags(jobs)[DAG_ID]
            params = {name: param.value for name, param in dag.params.items()}
            peak = after = snapshot = 0
            written = 0
            for number in range(1, 6):
                lytics.set_version(AUDIENCE, number - 1)
                context = _context(f"scheduled__run{number}", params)
                for task_id in ("scan", "deliver", "report"):
                    task = dag.get_task(task_id)
                    for name in task.template_fields:
                        value = getattr(task, name, None)
                        if isinstance(value, str) and "{{" in value:
                            setattr(task, name, jinja2.Template(value).render(**context))
                    if task_id == "report":
                        before_commit = _tree_bytes(data)
                        peak = max(peak, before_commit)
                        written += _tree_bytes(next(data.glob(f"*/runs/{safe_name(context['run_id'])}")))
                    context["ti"].xcoms[task_id] = task.execute(context)
                report = context["ti"].xcoms["report"]
                snapshot = Path(context["ti"].xcoms["scan"]["snapshot"]).stat().st_size
                after = _tree_bytes(data)
                if number == 5:
                    rows.append(
                        (
                            f"data dir after 5 runs, {members:,} members, 1% churn per run",
                            f"{_mb(after)} = {after / snapshot:.2f}x one snapshot ({_mb(snapshot)})",
                            f"goal ≤ 2.2x: {'met' if after / snapshot <= 2.2 else 'NOT met'}; "
                            f"{report['snapshot_bytes_per_member']} bytes/member; the 5 runs wrote "
                            f"{_mb(written)} ({written / snapshot:.1f}x), all kept without retention",
                        )
                    )
            rows.append(
                (
                    "data dir peak during a run (before its commit)",
                    f"{_mb(peak)} = {peak / snapshot:.2f}x one snapshot",
                    "baseline + the run's snapshot + its staged CSV",
                )
            )
    finally:
        sftp.stop()
    return rows


# -- (b) baseline in object storage vs the scan --------------------------------------------------
def _scan(members: int, workdir: Path, page_delay: float = 0.0) -> tuple[float, Path, int]:
    """The scan task of the Mapp DAG on a sandbox in its own process; seconds, snapshot, members."""
    import yaml

    from bench.mapp_file_drop import sandbox
    from lytics_provider.operators.lytics import LyticsAudienceScanOperator
    from lytics_provider.transfers.lytics_to_sftp import mapp_scan_fields

    config = yaml.safe_load(JOB_FILE.read_text())
    fields = mapp_scan_fields(config["field_mapping"], config.get("identifier_field", "email"))
    os.environ["LYTICS_DATA_DIR"] = str(workdir / f"scan-data-{page_delay}")
    with sandbox(members, workdir, page_delay=page_delay) as services:
        os.environ["AIRFLOW_CONN_LYTICS_DEFAULT"] = services.env["AIRFLOW_CONN_LYTICS_DEFAULT"]
        scan = LyticsAudienceScanOperator(
            task_id="scan", audience=AUDIENCE, job_id="bench_state", fields=fields
        )
        started = time.perf_counter()
        result = scan.execute(_context("scheduled__scan", {}))
        seconds = time.perf_counter() - started
    return seconds, Path(result["snapshot"]), int(result["members"])


def _compression_rows(snapshot: Path) -> list[tuple[str, str, str]]:
    """Compress-only speed and ratio of gzip level 1 and level 6 over the whole snapshot."""
    rows = []
    raw = snapshot.stat().st_size
    for level in (1, 6):
        packer = zlib.compressobj(level, zlib.DEFLATED, 31)
        out = 0
        started = time.perf_counter()
        with snapshot.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                out += len(packer.compress(chunk))
        out += len(packer.flush())
        seconds = time.perf_counter() - started
        rows.append(
            (
                f"compress the baseline, gzip level {level}",
                f"{seconds:.1f} s, {_mb(out)} ({out / raw:.1%} of {_mb(raw)})",
                f"{raw / seconds / 1e6:,.0f} MB/s in" + ("; chosen" if level == 1 else ""),
            )
        )
    try:
        import zstandard  # noqa: F401
    except ImportError:
        rows.append(
            ("compress the baseline, zstandard", "not measured", "zstandard is not installed in the venv")
        )
    return rows


def bench_state_store(members: int, workdir: Path, page_delay: float = 0.0) -> list[tuple[str, str, str]]:
    """Scan at ``members``, then upload and download that snapshot through LYTICS_STATE_URL (moto S3)."""
    import boto3

    from lytics_provider.pipeline import state_store

    scan_seconds, snapshot, scanned = _scan(members, workdir)
    rows = [
        (
            f"scan of {scanned:,} members into the snapshot (Mapp job's fields)",
            f"{scan_seconds:.1f} s, {_mb(snapshot.stat().st_size)}",
            f"{snapshot.stat().st_size / scanned:.0f} bytes/member; sandbox in its own process, no latency",
        )
    ]
    slow_scan = None
    if page_delay:
        slow_scan, slow_snapshot, _ = _scan(members, workdir, page_delay)
        shutil.rmtree(slow_snapshot.parent, ignore_errors=True)
        rows.append(
            (
                f"scan of {scanned:,} members, {page_delay * 1000:g} ms per page",
                f"{slow_scan:.1f} s",
                "the time an API needs to produce a page (the real Lytics API takes far longer)",
            )
        )
    with moto_server() as endpoint:
        bucket = "lytics-bench-state"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        ).create_bucket(Bucket=bucket)
        os.environ["AIRFLOW_CONN_BENCH_STATE"] = json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
            }
        )
        os.environ["LYTICS_STATE_URL"] = f"s3://bench_state@{bucket}/state"
        started = time.perf_counter()
        state_store.write_state("bench_state", "{}")  # the commit writes state.json anyway
        setup = time.perf_counter() - started
        started = time.perf_counter()
        baseline = state_store.upload_baseline("bench_state", "scheduled__scan", snapshot)
        upload = time.perf_counter() - started
        dest = workdir / "worker_b" / "snapshot.db"
        started = time.perf_counter()
        state_store.download_baseline("bench_state", baseline, dest)
        download = time.perf_counter() - started
        same = dest.stat().st_size == snapshot.stat().st_size
        os.environ.pop("LYTICS_STATE_URL")
    ratio = (upload + download) / scan_seconds
    rows.append(
        (
            "baseline upload + download, moto S3 (own process), gzip level 1",
            f"{upload:.1f} s + {download:.1f} s = {upload + download:.1f} s; {ratio:.2f}x the scan",
            f"goal ≤ 0.2x: {'met' if ratio <= 0.2 else 'NOT met'}; {_mb(baseline['bytes'])} stored; "
            f"downloaded copy {'has' if same else 'DOES NOT have'} the snapshot's size",
        )
    )
    rows.append(
        (
            "first call to the store in a process (connection, S3 session)",
            f"{setup:.1f} s",
            f"{(upload + download + setup) / scan_seconds:.2f}x the scan with it",
        )
    )
    if slow_scan:
        slow_ratio = (upload + download) / slow_scan
        rows.append(
            (
                f"baseline upload + download vs the scan at {page_delay * 1000:g} ms per page",
                f"{slow_ratio:.2f}x",
                f"goal ≤ 0.2x: {'met' if slow_ratio <= 0.2 else 'NOT met'}; "
                f"{(upload + download + setup) / slow_scan:.2f}x with the first call",
            )
        )
    rows += _compression_rows(snapshot)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.state_and_retention")
    parser.add_argument(
        "--members", type=int, default=200_000, help="audience size of the 5-run retention bench"
    )
    parser.add_argument("--scan-members", type=int, default=1_500_000, help="audience size of the scan bench")
    parser.add_argument(
        "--page-delay", type=float, default=0.005, help="also scan with this many seconds per page (0: skip)"
    )
    args = parser.parse_args(argv)
    import logging

    logging.disable(logging.WARNING)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="bench-state-"))
    os.environ["AIRFLOW_HOME"] = str(workdir / "airflow")
    try:
        rows = bench_retention(args.members, workdir / "retention")
        rows += bench_state_store(args.scan_members, workdir / "state", args.page_delay)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("| measure | value | notes |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nbench took {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
