"""``lytics-airflow``: check job configs, list their DAGs and print the job config JSON Schema.

lytics-airflow validate include/jobs        # exit 1 when any file is bad (use it in CI)
lytics-airflow list include/jobs            # DAG id, type and schedule of every job
lytics-airflow schema > lytics_provider/jobs/job-config.schema.json
lytics-airflow gc [--data-dir DIR] [--dry-run]  # free old runs' files in LYTICS_DATA_DIR
lytics-airflow docs [--write]                # check (or rewrite) README's generated tables
lytics-airflow new-integration NAME          # lay out the files of a new integration
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from lytics_provider.jobs.errors import JobConfigError, display_path
from lytics_provider.jobs.loader import LoadedJob, find_job_files, load_job_files
from lytics_provider.jobs.schedule import describe_schedule


def _expand(paths: Sequence[str]) -> tuple[list[Path], list[JobConfigError]]:
    files: list[Path] = []
    missing: list[JobConfigError] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            files.extend(find_job_files(path))
        elif path.is_file():
            files.append(path)
        else:
            missing.append(JobConfigError.single(path, "no such file or directory; check the path"))
    return list(dict.fromkeys(files)), missing


def _load(paths: Sequence[str], build: bool = False) -> tuple[list[LoadedJob], list[JobConfigError]]:
    files, errors = _expand(paths)
    jobs, bad = load_job_files(files)
    errors.extend(bad)
    if build and jobs:
        from lytics_provider.jobs.dag_builder import build_dag, build_error

        built = []
        for job in jobs:
            try:
                build_dag(job)
            except Exception as exc:
                errors.append(build_error(job, exc))
            else:
                built.append(job)
        jobs = built
    return jobs, errors


def _print_errors(errors: Sequence[JobConfigError], stream: TextIO) -> None:
    for error in errors:
        print(error.message, file=stream)


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate files and directories; print OK lines and errors; 1 when anything is wrong."""
    jobs, errors = _load(args.paths, build=args.build)
    for job in jobs:
        schedule = describe_schedule(job.config)
        print(f"OK {display_path(job.path)} ({job.dag_id}, {job.config.type}, {schedule})")
    _print_errors(errors, sys.stderr)
    bad_files = len({error.path for error in errors})
    print(f"{len(jobs)} valid, {bad_files} invalid", file=sys.stderr if errors else sys.stdout)
    return 1 if errors else 0


def cmd_list(args: argparse.Namespace) -> int:
    """A table of DAG id, type, schedule in words and file; errors go to stderr."""
    jobs, errors = _load(args.paths)
    rows = [("DAG ID", "TYPE", "SCHEDULE", "FILE")]
    rows += [
        (job.dag_id, job.config.type, describe_schedule(job.config), display_path(job.path))
        for job in sorted(jobs, key=lambda job: job.dag_id)
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        print("  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[3]]))
    _print_errors(errors, sys.stderr)
    return 1 if errors else 0


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the job config JSON Schema."""
    from lytics_provider.jobs.schema import job_config_json_schema_text

    sys.stdout.write(job_config_json_schema_text())
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    """Prune every job of a data dir like a commit does; print what was (or would be) freed."""
    from lytics_provider.pipeline.retention import gc_data_dir
    from lytics_provider.pipeline.workarea import data_root

    root = Path(args.data_dir) if args.data_dir else data_root()
    try:
        reports, leftovers = gc_data_dir(root, dry_run=args.dry_run)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 1
    verb = "would free" if args.dry_run else "freed"
    total = leftovers.freed_bytes
    for report in reports:
        result = report.result
        total += result.freed_bytes
        snapshot = ""
        if report.snapshot_bytes is not None:
            snapshot = (
                f"; baseline {report.baseline}: {report.snapshot_bytes} bytes, "
                f"{report.bytes_per_member} bytes/member"
            )
        print(
            f"{report.job}: {verb} {result.freed_bytes} bytes "
            f"({len(result.removed_runs)} run dirs removed, {len(result.kept_runs)} kept){snapshot}"
        )
    if leftovers.freed_bytes or leftovers.removed_files:
        print(f"leftovers (shared scans, .part files): {verb} {leftovers.freed_bytes} bytes")
    print(f"total: {verb} {total} bytes in {root}")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    """Check README's job-type and connection tables against the declarations, or rewrite them."""
    from lytics_provider.integrations import readme

    path = Path(args.readme) if args.readme else readme.readme_path()
    try:
        if args.write:
            print(f"{path}: {'tables rewritten' if readme.write(path) else 'tables up to date'}")
            return 0
        if readme.stale(path):
            print(
                f"{path}: generated tables are out of date; run `lytics-airflow docs --write`",
                file=sys.stderr,
            )
            return 1
    except (OSError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{path}: tables up to date")
    return 0


def cmd_new_integration(args: argparse.Namespace) -> int:
    """Write the files of a new integration, each with TODOs to fill in."""
    from lytics_provider.integrations.scaffold import NEXT_STEPS, scaffold

    root = Path(args.root)
    try:
        written = scaffold(root, args.name, args.title)
    except (ValueError, FileExistsError) as exc:
        print(exc, file=sys.stderr)
        return 1
    shown = [display_path(path) for path in written]
    for path in shown:
        print(f"created {path}")
    print(NEXT_STEPS.format(files=" ".join(shown), name=args.name))
    return 0


def parser() -> argparse.ArgumentParser:
    """The command line of ``lytics-airflow``."""
    root = argparse.ArgumentParser(prog="lytics-airflow", description="Lytics job configs for Airflow.")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser("validate", help="check job config files; exit 1 when any is bad")
    validate.add_argument("paths", nargs="+", metavar="PATH", help="job config files or directories")
    validate.add_argument(
        "--build", action="store_true", help="also build each DAG (imports Airflow; catches task errors)"
    )
    validate.set_defaults(func=cmd_validate)

    listing = commands.add_parser("list", help="DAG id, type and schedule of every job")
    listing.add_argument("paths", nargs="+", metavar="PATH", help="job config files or directories")
    listing.set_defaults(func=cmd_list)

    schema = commands.add_parser("schema", help="print the job config JSON Schema")
    schema.set_defaults(func=cmd_schema)

    gc = commands.add_parser("gc", help="delete old runs' files from the data dir (keeps baselines)")
    gc.add_argument("--data-dir", metavar="DIR", help="the data dir (default LYTICS_DATA_DIR)")
    gc.add_argument("--dry-run", action="store_true", help="only print what would be freed")
    gc.set_defaults(func=cmd_gc)

    docs = commands.add_parser("docs", help="check README's generated tables; --write rewrites them")
    docs.add_argument("--write", action="store_true", help="rewrite the tables from the declarations")
    docs.add_argument("--readme", metavar="FILE", help="the README (default: the source tree's README.md)")
    docs.set_defaults(func=cmd_docs)

    new = commands.add_parser("new-integration", help="lay out the files of a new integration")
    new.add_argument("name", metavar="NAME", help="module name of the integration, e.g. acme")
    new.add_argument("--title", help="display name, e.g. 'Acme Ads' (default: NAME in title case)")
    new.add_argument("--root", default=".", metavar="DIR", help="source tree to write into (default .)")
    new.set_defaults(func=cmd_new_integration)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lytics-airflow`` console script."""
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
