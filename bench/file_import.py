"""File import into a Lytics stream: the ingest engine next to a bare read-and-post.

    .venv/bin/python -m bench.file_import [--rows 200000] [--repeat 3]

Writes one gzip CSV of ``--rows`` rows, starts the Lytics API sandbox on loopback, then
alternates (``--repeat`` times, fastest reported):

* **bare**: ``csv.DictReader`` over the gzip stream, records posted with ``LyticsHook.collect_json``
  (8 MB batches), no rejects, no checkpoint — the floor;
* **engine**: :func:`lytics_provider.files.ingest.ingest_file` — the same file through the one
  reader (row rules, 16 KB check, rejects file) and :class:`StreamWriter` (5,000-record batches,
  a checkpoint saved after every acknowledged batch).

Prints Markdown table rows ``| measure | value | notes |``.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def _write_file(path: Path, rows: int) -> None:
    with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "first_name", "city", "plan", "score"])
        for i in range(rows):
            writer.writerow(
                [f"user{i}@example.com", f"First{i}", "Paris", "gold" if i % 3 else "free", i % 100]
            )


def _best(runs: list[float]) -> float:
    return min(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench_file_import_"))
    os.environ["LYTICS_DATA_DIR"] = str(workdir / "data")
    from lytics_provider.files.ingest import FileCheckpoint, StreamWriter, ingest_file
    from lytics_provider.files.readers import ReadOptions
    from lytics_provider.hooks.lytics import LyticsHook
    from lytics_provider.pipeline.rejects import RejectsWriter
    from lytics_sandbox.lytics import LyticsSandbox
    from tests.helpers import lytics_conn

    source = workdir / "people.csv.gz"
    _write_file(source, args.rows)
    sandbox = LyticsSandbox()
    sandbox.start()
    os.environ["AIRFLOW_CONN_LYTICS_DEFAULT"] = lytics_conn(sandbox.base_url)
    try:

        def bare() -> int:
            hook = LyticsHook()
            with gzip.open(source, "rb") as raw:
                reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
                return hook.collect_json("bare", reader).accepted

        def engine() -> int:
            checkpoint = FileCheckpoint(workdir / "checkpoint.json")
            checkpoint.clear()
            writer = StreamWriter(LyticsHook(), "engine", max_batch_records=5000)
            with RejectsWriter(workdir / "rejects.jsonl") as rejects:
                result = ingest_file(source, source.name, writer, checkpoint, rejects, ReadOptions("csv"))
            return result.accepted

        timings: dict[str, list[float]] = {"bare": [], "engine": []}
        measures: dict[str, Callable[[], int]] = {"bare": bare, "engine": engine}
        for _ in range(args.repeat):
            for name, run in measures.items():
                sandbox.reset_counters()
                started = time.perf_counter()
                accepted = run()
                timings[name].append(time.perf_counter() - started)
                if accepted != args.rows:
                    raise SystemExit(f"{name}: Lytics accepted {accepted} of {args.rows} records")
    finally:
        sandbox.stop()
    floor, ours = _best(timings["bare"]), _best(timings["engine"])
    print(f"| file import, bare read + collect_json, {args.rows:,} rows (gzip CSV) | {floor:.2f} s | floor |")
    print(
        f"| file import, ingest engine, {args.rows:,} rows | {ours:.2f} s | rows checked, rejects file, "
        "checkpoint per 5,000-row batch |"
    )
    print(f"| ingest engine / bare | {ours / floor:.2f}x | fastest of {args.repeat} alternating runs each |")


if __name__ == "__main__":
    main()
