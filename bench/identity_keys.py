"""Cost of keying snapshot members by identity fields, next to the single ``_uid`` key it replaced.

    .venv/bin/python -m bench.identity_keys [--members 100000] [--repeat 5]

Stores the same scan page bodies (100 members a page, the Mapp job's fields, as the API sends
them) into a fresh snapshot and builds its key index, in this process, for:

* ``_uid`` statement (baseline): the page insert keyed by ``CAST(json_extract(m.value, '$._uid')
  AS TEXT)`` into a table whose key may not be NULL, as snapshots were written before identity
  fields;
* ``Snapshot`` with ``identity_fields`` ``[_uid]``, and with the default ``[_uid, email]``;
* ``[_uid, email]`` over pages whose profiles carry no ``_uid`` (every key from the fallback).

Runs alternate; the median wall time is reported with its ratio to the baseline, and the ratio
of the median CPU time of this process (steadier on a busy machine). Figures are reported, never
asserted: they depend on the machine and on what else it runs.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lytics_provider.pipeline.snapshot import Snapshot
from lytics_sandbox.synth import SyntheticAccount

PAGE = 100
FIELDS = ("_uid", "email", "first_name", "last_name", "city", "segments")
_BASELINE_SCHEMA = """
CREATE TABLE members (uid TEXT NOT NULL CHECK (uid <> ''), record TEXT NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_BASELINE_INSERT = (
    "INSERT OR REPLACE INTO members (uid, record) "
    "SELECT CAST(json_extract(m.value, ?2) AS TEXT), m.value FROM json_each(?1, '$.data') AS m "
    "WHERE ?3 IS NULL OR m.key < ?3 ORDER BY m.key"
)


def page_bodies(members: int, with_uid: bool = True) -> list[str]:
    """Scan page bodies of ``members`` synthetic profiles cut down to the Mapp job's fields."""
    account = SyntheticAccount(audiences={"bench": members})
    keep = FIELDS if with_uid else FIELDS[1:]
    rows = [{k: p[k] for k in keep} for p in account.iter_members("bench")]
    return [
        json.dumps({"status": 200, "data": rows[i : i + PAGE], "_next": f"c{i}", "total": members})
        for i in range(0, len(rows), PAGE)
    ]


def store_baseline(path: Path, bodies: list[str]) -> int:
    """The pre-identity page insert: one key, NOT NULL, cursor in the same transaction."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(_BASELINE_SCHEMA)
    for number, body in enumerate(bodies, 1):
        db.execute("BEGIN")
        db.execute(_BASELINE_INSERT, (body, '$."_uid"', None))
        db.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            [("cursor", f"c{number}"), ("pages", str(number)), ("total", "")],
        )
        db.execute("COMMIT")
    db.execute("CREATE UNIQUE INDEX members_uid ON members (uid)")
    count = db.execute("SELECT count(*) FROM members").fetchone()[0]
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return int(count)


def store_snapshot(path: Path, bodies: list[str], identity: list[str]) -> int:
    """The snapshot's own page insert with ``identity``."""
    with Snapshot(path, identity_fields=identity) as snap:
        for number, body in enumerate(bodies, 1):
            snap.add_raw_page(body, f"c{number}")
        snap.mark_complete()
        return snap.count()


def timed(run: Callable[[Path], int], folder: Path, name: str) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, members stored) of one run."""
    path = folder / f"{name}-{time.monotonic_ns()}.db"
    started, cpu = time.perf_counter(), time.process_time()
    count = run(path)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return seconds, cpu, count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.identity_keys", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--members", type=int, default=100_000, help="members stored per run (default 100,000)"
    )
    parser.add_argument("--repeat", type=int, default=5, help="rounds of alternating runs (median reported)")
    args = parser.parse_args(argv)
    with_uid = page_bodies(args.members)
    no_uid = page_bodies(args.members, with_uid=False)
    cases: dict[str, tuple[Callable[[Path], int], str]] = {
        "baseline": (lambda p: store_baseline(p, with_uid), "`_uid` statement, key NOT NULL (before)"),
        "uid": (lambda p: store_snapshot(p, with_uid, ["_uid"]), "`identity_fields: [_uid]`"),
        "default": (lambda p: store_snapshot(p, with_uid, ["_uid", "email"]), "`[_uid, email]` (default)"),
        "no_uid": (
            lambda p: store_snapshot(p, no_uid, ["_uid", "email"]),
            "`[_uid, email]`, profiles without `_uid`",
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    with tempfile.TemporaryDirectory(prefix="bench-identity-") as tmp:
        for _ in range(args.repeat):
            for name, (run, _) in cases.items():
                seconds, used, count = timed(run, Path(tmp), name)
                if count != args.members:
                    raise SystemExit(f"{name}: stored {count} members, expected {args.members}")
                times[name].append(seconds)
                cpu[name].append(used)
    base, base_cpu = statistics.median(times["baseline"]), statistics.median(cpu["baseline"])
    print("| measure | value | notes |")
    print("|---|---|---|")
    for name, (_, label) in cases.items():
        median, used = statistics.median(times[name]), statistics.median(cpu[name])
        rate = args.members / median if median else 0.0
        ratio = (
            "" if name == "baseline" else f"; {median / base:.2f}x the baseline, CPU {used / base_cpu:.2f}x"
        )
        print(
            f"| snapshot store + index, {label} | {median:.3f} s ({rate:,.0f} members/s), CPU {used:.3f} s | "
            f"{args.members:,} members, {PAGE} a page, median of {args.repeat}{ratio} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
