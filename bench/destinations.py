"""Destination figures side by side in one run: every bench module that declares
``DESTINATION_BENCH`` (its title) runs in its own process, and its rows are printed under that title.

    .venv/bin/python -m bench.destinations [--members 100000] [--only webhooks kinesis_sqs] [--write]

Each module prints ``| measure | value | notes |`` rows with its ratios computed in its own run
(events per second against a baseline, calls against the ideal ``ceil(n / batch)``, the request
rate against the vendor's limit). ``--write`` puts the table and the command under "Destinations"
in ``bench/RESULTS.md``. Figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import ast
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "RESULTS.md"
SECTION = "## Destinations"


def destination_benches() -> dict[str, str]:
    """``module name -> title`` of the bench modules that declare ``DESTINATION_BENCH``."""
    found: dict[str, str] = {}
    for path in sorted(BENCH.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "DESTINATION_BENCH" for t in node.targets)
                and isinstance(node.value, ast.Constant)
            ):
                found[path.stem] = str(node.value.value)
    return found


def run_one(module: str, members: int) -> tuple[list[str], float]:
    """The table rows ``python -m bench.<module> --members N`` printed, and its wall seconds."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", "--members", str(members)],
        cwd=BENCH.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        return [
            f"| {module} failed | exit {done.returncode} | {done.stderr.strip().splitlines()[-1:]} |"
        ], seconds
    rows = [
        line
        for line in done.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| measure") and not line.startswith("|---")
    ]
    return rows, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.destinations")
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--only", nargs="+", help="bench module names (default: every destination bench)")
    parser.add_argument(
        "--write", action="store_true", help="save the table under Destinations in RESULTS.md"
    )
    args = parser.parse_args(argv)
    benches = destination_benches()
    chosen = args.only or list(benches)
    unknown = sorted(set(chosen) - set(benches))
    if unknown:
        parser.error(f"not destination benches: {unknown}; choose from {sorted(benches)}")
    lines = ["| destination | measure | value | notes |", "|---|---|---|---|"]
    for module in chosen:
        rows, seconds = run_one(module, args.members)
        print(f"{benches[module]}: {len(rows)} rows in {seconds:.0f} s", file=sys.stderr)
        lines += [f"| {benches[module]} {row}" for row in rows]
    table = "\n".join(lines)
    print(table)
    if args.write:
        command = shlex.join([".venv/bin/python", "-m", "bench.destinations", *(argv or sys.argv[1:])])
        section = (
            f"{SECTION}\n\n`{command}` on {platform.node() or 'this machine'} "
            f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}), every destination's rows from "
            f"one run; ratios are computed within each module's own run.\n\n{table}\n"
        )
        text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
        pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
        text = pattern.sub(section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
        RESULTS.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
