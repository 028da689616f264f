"""Mapp SFTP file drop at scale, next to the ceiling: reading the same scan pages and nothing else.

The sandbox (Lytics API + SFTP server) runs in its own process. Each measured task runs in a
fresh child process (``python -m bench.mapp_file_drop child <mode>``), whose peak RSS comes from
``wait4``'s ``ru_maxrss``:

* ``read``: the Lytics hook streams every scan page of the audience (the Mapp job's fields) and
  counts the members: the ceiling for any export;
* ``read-child``: the same read through the scan fetcher's child process (how the file drop's
  scan fetches), counting the members in the task's process;
* ``drop``: the ``scan`` → ``deliver`` → ``report`` tasks of the DAG the generator builds from
  ``include/jobs/mapp_high_value_daily.yaml``, executed in order with a minimal task context.

``python -m bench.mapp_file_drop [--members N] [--repeat R] [--page-delay S]`` prints only the
file-drop rows of ``python -m bench`` (reads and drops alternating in one command).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.processes import REPO, child_environment, lytics_connection, sandbox_process

JOB_FILE = REPO / "include" / "jobs" / "mapp_high_value_daily.yaml"
DAG_ID = "lytics_mapp_high_value_daily"
AUDIENCE = "high_value"


@dataclass(frozen=True)
class Measurement:
    """One child run: rows, wall seconds, peak RSS and what the child reported."""

    mode: str
    members: int
    rows: int
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float
    detail: dict[str, Any]

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Services:
    """The environment that points the jobs at the running sandbox, and its SFTP root."""

    env: dict[str, str]
    sftp_root: Path


def _job_config() -> dict[str, Any]:
    import yaml

    return yaml.safe_load(JOB_FILE.read_text())


@contextmanager
def sandbox(members: int, workdir: Path, page_delay: float = 0.0) -> Iterator[Services]:
    """Start ``python -m lytics_sandbox`` on free ports with one audience of ``members``.

    ``page_delay`` adds that many seconds to every scan page (the API's own latency).
    """
    sftp_root = workdir / "sftp"
    folder = str(_job_config().get("folder") or "").strip("/")
    (sftp_root / folder).mkdir(parents=True, exist_ok=True)
    args = [
        "--lytics-port", "0", "--sftp-port", "0", "--sftp-root", str(sftp_root),
        "--audience", f"{AUDIENCE}={members}", "--page-delay", str(page_delay),
    ]  # fmt: skip
    with sandbox_process(*args) as info:
        sftp = {
            "conn_type": "sftp",
            "host": info["sftp_host"],
            "port": info["sftp_port"],
            "login": info["sftp_user"],
            "password": "sandbox-pass",
            "extra": {"no_host_key_check": True, "compress": False},
        }
        connections = {
            "lytics_default": lytics_connection(info),
            _job_config()["sftp_conn_id"]: json.dumps(sftp),
        }
        yield Services(child_environment(**connections), sftp_root)


def measure(mode: str, members: int, services: Services, workdir: Path) -> Measurement:
    """Run one child (``read`` or ``drop``) and collect its report and its rusage."""
    data = workdir / f"data-{mode}-{time.monotonic_ns()}"
    env = {**services.env, "LYTICS_DATA_DIR": str(data), "AIRFLOW_HOME": str(workdir / "airflow")}
    out = workdir / f"{mode}.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.mapp_file_drop", "child", mode, "--out", str(out)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    stderr = proc.stderr
    err_text = stderr.read().decode(errors="replace") if stderr else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"bench child {mode} failed ({proc.returncode}):\n{err_text[-4000:]}")
    report = json.loads(out.read_text())
    shutil.rmtree(data, ignore_errors=True)
    return Measurement(
        mode=mode,
        members=members,
        rows=int(report["rows"]),
        seconds=float(report["seconds"]),
        peak_rss_mb=usage.ru_maxrss / 1024,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        detail=report,
    )


# -- child side -------------------------------------------------------------------------------
class _TaskInstance:
    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value", **_: Any) -> Any:
        return self.xcoms.get(task_ids or "")


def _render(task: Any, context: dict[str, Any]) -> None:
    import jinja2

    for name in task.template_fields:
        value = getattr(task, name, None)
        if isinstance(value, str) and "{{" in value:
            setattr(task, name, jinja2.Template(value).render(**context))


def child_read(in_subprocess: bool = False) -> dict[str, Any]:
    """Read every scan page of the audience with the job's fields; count members.

    ``in_subprocess``: through the scan fetcher's child process, as the file drop's scan reads.
    """
    from lytics_provider.hooks.lytics import LyticsHook
    from lytics_provider.transfers.lytics_to_sftp import mapp_scan_fields

    config = _job_config()
    fields = mapp_scan_fields(config["field_mapping"], config.get("identifier_field", "email"))
    started = time.perf_counter()
    hook = LyticsHook()
    segment = hook.get_segment(AUDIENCE)
    rows = pages = 0
    for page in hook.scan_segment_raw(
        segment["id"], fields=sorted({"_uid", *fields}), in_subprocess=in_subprocess
    ):
        rows += page.count
        pages += 1
    return {"rows": rows, "pages": pages, "api_calls": hook.calls, "seconds": time.perf_counter() - started}


def child_drop() -> dict[str, Any]:
    """Build the Mapp DAG from its job config and run scan, deliver and report in order."""
    import pendulum

    from lytics_provider.jobs.dag_builder import build_dags

    jobs = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    shutil.copy(JOB_FILE, jobs / JOB_FILE.name)
    dag = build_dags(jobs)[DAG_ID]
    params = {name: param.value for name, param in dag.params.items()}
    ti = _TaskInstance()
    logical = pendulum.now("UTC").replace(microsecond=0)
    context: dict[str, Any] = {
        "run_id": f"bench__{logical.isoformat()}",
        "params": params,
        "ti": ti,
        "logical_date": logical,
        "data_interval_start": logical,
        "data_interval_end": logical,
        "dag_run": None,
    }
    phases: dict[str, float] = {}
    started = time.perf_counter()
    for task_id in ("scan", "deliver", "report"):
        task = dag.get_task(task_id)
        _render(task, context)
        began = time.perf_counter()
        ti.xcoms[task_id] = task.execute(context)
        phases[task_id] = round(time.perf_counter() - began, 2)
    seconds = time.perf_counter() - started
    report = ti.xcoms["report"]
    delivery = ti.xcoms["deliver"]
    return {
        "rows": delivery["rows"],
        "rejected": delivery["rejected"],
        "bytes": delivery["bytes"],
        "members": report["members"],
        "api_calls": report.get("scan_api_calls"),
        "phases": phases,
        "upload_seconds": delivery.get("upload_seconds"),
        "seconds": seconds,
    }


def child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mapp_file_drop child")
    parser.add_argument("mode", choices=("read", "read-child", "drop"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    import logging

    logging.disable(logging.INFO)
    child = args.mode == "read-child"
    report = child_drop() if args.mode == "drop" else child_read(in_subprocess=child)
    report["self_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    args.out.write_text(json.dumps(report))
    return 0


def main(argv: list[str]) -> int:
    """The file-drop rows of ``python -m bench`` alone: alternating bare reads and file drops."""
    from bench.__main__ import file_drop_runs, pair_rows

    parser = argparse.ArgumentParser(prog="python -m bench.mapp_file_drop", description=main.__doc__)
    parser.add_argument("--members", type=int, default=1_500_000, help="audience size")
    parser.add_argument("--repeat", type=int, default=2, help="alternating read/drop rounds")
    parser.add_argument("--page-delay", type=float, default=0.0, help="seconds of API latency per page")
    args = parser.parse_args(argv)
    latency = f"{args.page_delay * 1000:.0f} ms per page" if args.page_delay > 0 else "no API latency"
    started = time.monotonic()
    runs = file_drop_runs(args.members, args.repeat, args.page_delay)
    print("| measure | value | notes |\n|---|---|---|")
    print("\n".join(pair_rows(runs, latency)))
    print(f"\n{args.repeat} alternating rounds; bench took {time.monotonic() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        sys.exit(child_main(sys.argv[2:]))
    sys.exit(main(sys.argv[1:]))
