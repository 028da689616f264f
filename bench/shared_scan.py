"""Four jobs on one audience sharing one scan, next to one job scanning alone, in one run.

    .venv/bin/python -m bench.shared_scan [--members 500000] [--page-delay 0] [--repeat 1] [--unshared]

The Lytics sandbox runs in its own process with one audience of ``--members``. Each job is the
scan task of a job (``LyticsAudienceScanOperator``) run in its own child process
(``python -m bench.shared_scan child ...``), as a worker runs it:

* ``1 job``: one job scanning its fields alone (``scan_max_age_minutes: 0``), the baseline;
* ``1 job with the 4 jobs' fields``: the same scan fetching what the shared scan fetches;
* ``4 jobs, shared``: four jobs with different fields started together, each with the union of
  the four as ``scan_fields`` (what the DAG generator sets): one scans, three wait and copy;
* ``4 jobs, alone`` (``--unshared``): the same four jobs each scanning alone.

API calls are the sum of what each task reports (``api_calls``: audience lookup + scan pages,
retries included). Wall time runs from the moment every child has imported Airflow and the
provider (they wait for a start signal, as warm workers would) until the last task returned.
With ``--repeat`` the three runs alternate and the fastest of each counts. Printed as Markdown
rows ``| measure | value | notes |``; figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.processes import REPO, child_environment, lytics_connection, sandbox_process

AUDIENCE = "big"
CALLS_GOAL = 1.05
JOB_FIELDS = {
    "mapp": ["email", "first_name", "last_name", "city"],
    "s3": ["email", "first_name", "last_name", "country", "score_engagement", "segments"],
    "dotdigital": ["email", "first_name", "country"],
    "icontact": ["email", "user_id", "first_name", "last_name"],
}
SOLO_JOB = "mapp"
UNION_JOB = "union"  # one job asking for the fields of all four
JOB_FIELDS[UNION_JOB] = sorted({field for fields in list(JOB_FIELDS.values()) for field in fields})


@contextmanager
def sandbox(members: int, page_delay: float) -> Iterator[dict[str, str]]:
    """Start the Lytics sandbox with one audience of ``members``; yield the children's environment."""
    args = [
        "--no-sftp",
        "--lytics-port",
        "0",
        "--audience",
        f"{AUDIENCE}={members}",
        "--page-delay",
        str(page_delay),
    ]
    with sandbox_process(*args) as info:
        yield child_environment(lytics_default=lytics_connection(info))


def run_jobs(
    env: dict[str, str], workdir: Path, name: str, jobs: list[str], shared: bool
) -> tuple[float, list[dict[str, Any]]]:
    """Start one child per job, in a fresh data dir; once all have imported, let them run at once.

    Returns the seconds from that start signal until the last task ended, and each child's report.
    """
    data = workdir / f"data-{name}"
    union = sorted({field for job in jobs for field in JOB_FIELDS[job]})
    go = workdir / f"go-{name}"
    children = []
    for job in jobs:
        out = workdir / f"{name}-{job}.json"
        cmd = [
            sys.executable, "-m", "bench.shared_scan", "child", "--job", job, "--out", str(out),
            "--max-age", "30" if shared else "0", "--scan-fields", ",".join(union), "--go", str(go),
        ]  # fmt: skip
        child_env = {**env, "LYTICS_DATA_DIR": str(data), "AIRFLOW_HOME": str(workdir / "airflow")}
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        children.append((proc, out))
    while not all(Path(f"{out}.ready").exists() for _, out in children):
        if any(proc.poll() is not None for proc, _ in children):
            break
        time.sleep(0.05)
    started = time.time()
    go.touch()
    reports = []
    for proc, out in children:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(
                f"bench child failed ({proc.returncode}):\n{err.decode(errors='replace')[-4000:]}"
            )
        reports.append(json.loads(out.read_text()))
    seconds = max(report["task_finished"] for report in reports) - started
    shutil.rmtree(data, ignore_errors=True)
    return seconds, reports


def child_main(argv: list[str]) -> int:
    """Run one job's scan task and write what it returned (and its wall time) to ``--out``."""
    parser = argparse.ArgumentParser(prog="python -m bench.shared_scan child")
    parser.add_argument("--job", required=True, choices=sorted(JOB_FIELDS))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-age", type=float, default=30)
    parser.add_argument("--scan-fields", default="")
    parser.add_argument("--go", type=Path, required=True, help="start once this file exists")
    args = parser.parse_args(argv)
    import logging

    logging.disable(logging.INFO)
    from lytics_provider.operators.lytics import LyticsAudienceScanOperator

    task = LyticsAudienceScanOperator(
        task_id="scan",
        audience=AUDIENCE,
        job_id=f"bench_{args.job}",
        fields=JOB_FIELDS[args.job],
        scan_max_age_minutes=args.max_age,
        scan_fields=[f for f in args.scan_fields.split(",") if f] or None,
    )
    Path(f"{args.out}.ready").touch()
    while not args.go.exists():
        time.sleep(0.01)
    result = task.execute({"run_id": "bench__run", "params": {}})
    result["task_finished"] = time.time()
    args.out.write_text(json.dumps(result))
    return 0


def _calls(reports: list[dict[str, Any]]) -> int:
    return sum(int(report["api_calls"]) for report in reports)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.shared_scan", description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=500_000)
    parser.add_argument("--page-delay", type=float, default=0.0, help="seconds the sandbox adds per page")
    parser.add_argument("--unshared", action="store_true", help="also run the four jobs each scanning alone")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the three runs; the fastest counts")
    args = parser.parse_args(argv)
    jobs = [job for job in JOB_FIELDS if job != UNION_JOB]
    with (
        tempfile.TemporaryDirectory(prefix="bench-shared-scan-") as tmp,
        sandbox(args.members, args.page_delay) as env,
    ):
        workdir = Path(tmp)
        rounds = []
        for _ in range(max(1, args.repeat)):
            rounds.append(
                (
                    run_jobs(env, workdir, "solo", [SOLO_JOB], shared=False),
                    run_jobs(env, workdir, "union", [UNION_JOB], shared=False),
                    run_jobs(env, workdir, "shared", jobs, shared=True),
                )
            )
        solo_seconds, solo = min((r[0] for r in rounds), key=lambda run: run[0])
        union_seconds = min(r[1][0] for r in rounds)
        shared_seconds, shared = min((r[2] for r in rounds), key=lambda run: run[0])
        alone = run_jobs(env, workdir, "alone", jobs, shared=False) if args.unshared else None
    members = solo[0]["members"]
    readers = sum(1 for report in shared if report.get("scan_shared_from"))
    ratio = _calls(shared) / _calls(solo)
    verdict = "meets" if ratio <= CALLS_GOAL else "misses"
    where = f"{members:,}-member audience, page delay {args.page_delay:g} s, fastest of {len(rounds)} rounds"
    print("| measure | value | notes |")
    print("|---|---|---|")
    print(f"| scan API calls, 1 job alone | {_calls(solo):,} | {where}; audience lookup + scan pages |")
    print(
        f"| scan API calls, 4 jobs sharing | {_calls(shared):,} | {ratio:.4f}x the 1 job "
        f"({verdict} the {CALLS_GOAL}x goal); {readers} of 4 read the shared scan |"
    )
    print(f"| wall time, 1 job alone | {solo_seconds:.1f} s | the scan task, in its own process |")
    print(
        f"| wall time, 1 job alone with the 4 jobs' fields | {union_seconds:.1f} s | "
        f"{union_seconds / solo_seconds:.2f}x the 1 job: what the shared scan fetches |"
    )
    print(
        f"| wall time, 4 jobs sharing | {shared_seconds:.1f} s | "
        f"{shared_seconds / solo_seconds:.2f}x the 1 job; "
        f"{shared_seconds / union_seconds:.2f}x the scan of the 4 jobs' fields alone; started together, "
        "until the last returned (one scan + 4 copies) |"
    )
    if alone is not None:
        alone_seconds, alone_reports = alone
        print(
            f"| scan API calls, 4 jobs alone | {_calls(alone_reports):,} | "
            f"{_calls(alone_reports) / _calls(solo):.2f}x the 1 job (scan_max_age_minutes: 0) |"
        )
        print(
            f"| wall time, 4 jobs alone | {alone_seconds:.1f} s | "
            f"{alone_seconds / solo_seconds:.2f}x the 1 job; "
            "four scans at once on this machine |"
        )
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        sys.exit(child_main(sys.argv[2:]))
    sys.exit(main())
