"""``make bench``: scale figures for the Lytics jobs, printed as one Markdown table.

    .venv/bin/python -m bench [--members 1500000] [--small 100000] [--repeat 3] [--quick] [--write]

Rows: the Mapp SFTP file drop of a ``--members`` audience (rows/s, wall time, peak RSS of the
task's process) next to the bare scan read in the same run (the ceiling); peak RSS of the file
drop at ``--small`` vs ``--members``; DAG-file parse time for 500 generated job configs
(``bench/parse_time.py``); Dotdigital API calls per run (``bench/dotdigital_calls.py``); scan API
calls of four jobs sharing one audience vs one job (``bench/shared_scan.py``); the data dir after
five runs vs one snapshot, and the baseline upload + download to moto S3 vs the scan
(``bench/state_and_retention.py``).
``--write`` also saves the table and the command to ``bench/RESULTS.md``.
Figures are reported, never asserted: they depend on the machine and on what else it runs.
"""

from __future__ import annotations

import argparse
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.mapp_file_drop import Measurement, measure, sandbox

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "RESULTS.md"
DROP_GOAL = 1.25
RSS_GOAL = 1.2
PARSE_GOAL = 2.0
NOTE = (
    "The bare scan read is the hook fetching every scan page in the task's process and counting\n"
    "members (`LyticsHook.scan_segment_raw`), the fastest plain read of the pages. Both services\n"
    "run on this machine, so with no API latency the Lytics sandbox needs one of the two cores\n"
    "to produce pages and every bit of CPU the file drop spends competes with it. The 5 ms-per-page\n"
    "pair adds the time an API needs to produce a page (the real Lytics API takes far longer:\n"
    "about an hour for a 1.5M-member scan). The bench's SFTP connection sets `compress: false`\n"
    "(SSH compression only costs CPU on loopback; on a slow link leave it on). Wall times vary\n"
    "by tens of percent between runs on a shared 2-core machine; compare ratios within one run.\n"
)


@dataclass(frozen=True)
class PairRuns:
    """Alternating bare reads and file drops of one audience; the fastest of each is reported."""

    reads: list[Measurement]
    drops: list[Measurement]
    child_reads: list[Measurement]

    @property
    def read(self) -> Measurement:
        return min(self.reads, key=lambda m: m.seconds)

    @property
    def drop(self) -> Measurement:
        return min(self.drops, key=lambda m: m.seconds)

    @property
    def child_read(self) -> Measurement:
        return min(self.child_reads, key=lambda m: m.seconds)

    @property
    def child_ratios(self) -> list[float]:
        """file drop / read through the fetcher child, per round."""
        return [d.seconds / r.seconds for r, d in zip(self.child_reads, self.drops, strict=True)]

    @property
    def pair_ratios(self) -> list[float]:
        """file drop / bare read of each alternating pair, in run order."""
        return [d.seconds / r.seconds for r, d in zip(self.reads, self.drops, strict=True)]


def file_drop_runs(members: int, repeat: int, page_delay: float = 0.0) -> PairRuns:
    """Alternate bare reads (in-process, then through the fetcher child) and file drops ``repeat`` times."""
    runs = PairRuns([], [], [])
    with (
        tempfile.TemporaryDirectory(prefix="lytics-bench-") as tmp,
        sandbox(members, Path(tmp), page_delay) as services,
    ):
        for _ in range(repeat):
            runs.reads.append(measure("read", members, services, Path(tmp)))
            runs.child_reads.append(measure("read-child", members, services, Path(tmp)))
            runs.drops.append(measure("drop", members, services, Path(tmp)))
    return runs


def run_script(args: list[str], timeout: float = 1800) -> tuple[int, str]:
    """Run a sibling bench script; return its exit code and output."""
    script = REPO / "bench" / args[0]
    if not script.exists():
        return -1, "not available"
    result = subprocess.run(
        [sys.executable, str(script), *args[1:]], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    return result.returncode, (result.stdout + result.stderr).strip()


def parse_time(jobs: int) -> tuple[str, str]:
    code, out = run_script(["parse_time.py", "--jobs", str(jobs)])
    if code == -1:
        return "not available", ""
    match = re.search(r"first parse[^:]*:\s*([\d.]+) s wall, ([\d.]+) s CPU", out)
    if code != 0 or not match:
        return f"failed (exit {code})", out[-300:]
    wall, cpu = float(match.group(1)), float(match.group(2))
    verdict = "meets" if wall < PARSE_GOAL else "misses"
    return f"{wall:.2f} s ({cpu:.2f} s CPU)", f"{verdict} < {PARSE_GOAL:.0f} s"


def dotdigital_calls(members: int) -> tuple[str, str]:
    code, out = run_script(["dotdigital_calls.py", "--members", str(members)])
    if code == -1:
        return "not available", ""
    rows = re.findall(r"^\s*(\d+)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)", out, re.M)
    if code != 0 or not rows:
        return f"failed (exit {code})", out[-300:]
    text = "; ".join(f"run {r[0]}: {r[4]} (enters {r[2]}, exits {r[3]})" for r in rows)
    return text, f"{members:,}-member audience, then 1% churn per run"


def module_rows(module: str, args: list[str], timeout: float = 3600) -> list[str]:
    """Run ``python -m bench.<module>`` and return the Markdown table rows it printed."""
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    rows = [
        line
        for line in result.stdout.splitlines()
        if line.startswith("| ") and not line.startswith(("| measure ", "|---"))
    ]
    if result.returncode != 0 or not rows:
        tail = (result.stdout + result.stderr).strip()[-300:].replace("\n", " ").replace("|", "/")
        return [f"| bench.{module} | failed (exit {result.returncode}) | {tail} |"]
    return rows


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def pair_rows(runs: PairRuns, latency: str) -> list[str]:
    """Table rows for one bare-read / file-drop pair."""
    read, drop = runs.read, runs.drop
    ratio = statistics.median(runs.pair_ratios)
    fastest = drop.seconds / read.seconds
    each = ", ".join(f"{r:.2f}x" for r in runs.pair_ratios)
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in drop.detail.get("phases", {}).items())
    upload = drop.detail.get("upload_seconds")
    if upload is not None:
        phases += f" (of which SFTP upload {upload:.1f} s)"
    return [
        f"| bare scan read, {read.members:,} members, {latency} (ceiling) | "
        f"{fmt_rate(read.rows_per_second)} rows/s, {read.seconds:.1f} s, "
        f"peak RSS {read.peak_rss_mb:.0f} MB | "
        f"{read.detail['pages']:,} pages of 100, {read.detail['api_calls']:,} API calls, "
        f"{read.cpu_seconds:.0f} s CPU |",
        f"| Mapp SFTP file drop, {drop.members:,} members, {latency} | "
        f"{fmt_rate(drop.rows_per_second)} rows/s, "
        f"{drop.seconds:.1f} s, peak RSS {drop.peak_rss_mb:.0f} MB | {phases}; "
        f"{drop.detail['bytes'] / 1e6:.0f} MB CSV, {drop.detail['rejected']} rejected, "
        f"{drop.cpu_seconds:.0f} s CPU |",
        f"| bare scan read through the fetcher child, {latency} | "
        f"{fmt_rate(runs.child_read.rows_per_second)} rows/s, {runs.child_read.seconds:.1f} s | "
        f"file drop / this read: {statistics.median(runs.child_ratios):.2f}x (median; each round: "
        + ", ".join(f"{r:.2f}x" for r in runs.child_ratios)
        + ") |",
        f"| file drop / bare read, {latency} | {ratio:.2f}x (median of the alternating pairs) | "
        f"goal ≤ {DROP_GOAL}x: {'met' if ratio <= DROP_GOAL else 'missed'}; each pair: {each}; "
        f"fastest drop / fastest read: {fastest:.2f}x |",
    ]


def table(args: argparse.Namespace) -> list[str]:
    started = time.monotonic()
    runs = file_drop_runs(args.members, args.repeat)
    drop = runs.drop
    small = file_drop_runs(args.small, 1).drop
    rss_ratio = drop.peak_rss_mb / small.peak_rss_mb
    lines = [
        "| measure | value | notes |",
        "|---|---|---|",
        *pair_rows(runs, "no API latency"),
    ]
    if args.page_delay > 0:
        lines += pair_rows(
            file_drop_runs(args.members, 1, args.page_delay), f"{args.page_delay * 1000:.0f} ms per page"
        )
    parse, parse_note = parse_time(args.jobs) if not args.skip_parse else ("skipped", "")
    calls, calls_note = dotdigital_calls(args.dd_members) if not args.skip_dotdigital else ("skipped", "")
    lines += [
        f"| peak RSS of the file drop, {small.members:,} vs {drop.members:,} members | "
        f"{small.peak_rss_mb:.0f} MB vs {drop.peak_rss_mb:.0f} MB ({rss_ratio:.2f}x) | goal ≤ {RSS_GOAL}x: "
        f"{'met' if rss_ratio <= RSS_GOAL else 'missed'} |",
        f"| DAG-file parse, {args.jobs} job configs | {parse} | {parse_note} |",
        f"| Dotdigital API calls per run | {calls} | {calls_note} |",
    ]
    if not args.skip_shared:
        lines += module_rows("shared_scan", ["--members", str(args.shared_members)])
    if not args.skip_state:
        lines += module_rows(
            "state_and_retention",
            ["--members", str(args.retention_members), "--scan-members", str(args.members)],
        )
    lines.append("")
    lines.append(
        f"Machine: {platform.machine()}, {_cpus()} CPUs, Python {platform.python_version()}; "
        f"{args.repeat} alternating read/drop pairs (rows/s and times: the fastest of each); "
        f"bench took {time.monotonic() - started:.0f} s."
    )
    return lines


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_500_000, help="audience size (default 1,500,000)")
    parser.add_argument("--small", type=int, default=100_000, help="small audience for the RSS ratio")
    parser.add_argument(
        "--repeat", type=int, default=3, help="alternating read/drop pairs (median ratio reported)"
    )
    parser.add_argument("--jobs", type=int, default=500, help="job configs for the parse-time row")
    parser.add_argument("--dd-members", type=int, default=100_000, help="audience of the Dotdigital row")
    parser.add_argument(
        "--page-delay",
        type=float,
        default=0.005,
        help="seconds of API latency per scan page for the second read/drop pair (0 = skip the pair)",
    )
    parser.add_argument("--quick", action="store_true", help="200k/50k members, 20k for Dotdigital")
    parser.add_argument("--skip-parse", action="store_true")
    parser.add_argument("--skip-dotdigital", action="store_true")
    parser.add_argument(
        "--shared-members",
        type=int,
        default=500_000,
        help="audience of the shared-scan rows (bench.shared_scan)",
    )
    parser.add_argument(
        "--retention-members",
        type=int,
        default=200_000,
        help="audience of the retention rows (bench.state_and_retention); its scan rows use --members",
    )
    parser.add_argument("--skip-shared", action="store_true")
    parser.add_argument("--skip-state", action="store_true")
    parser.add_argument("--write", action="store_true", help="save the table to bench/RESULTS.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.members, args.small, args.dd_members = 200_000, 50_000, 20_000
        args.shared_members, args.retention_members = 100_000, 50_000
    lines = table(args)
    print("\n".join(lines))
    if args.write:
        command = " ".join(["python -m bench", *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
        RESULTS.write_text(
            "# Benchmark results\n\n"
            f"Produced by `make bench` / `.venv/bin/python {command.removeprefix('python ')}`"
            " on the loopback sandboxes (Lytics API emulator and SFTP server in their own process).\n\n"
            + "\n".join(lines)
            + "\n\n"
            + NOTE
        )
        print(f"\nwritten to {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
