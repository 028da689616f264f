"""Parse time of ``dags/lytics_jobs.py`` over many generated job configs (default 500).

    .venv/bin/python bench/parse_time.py [--jobs 500]

Copies the example configs in ``include/jobs`` round-robin into a temp folder (each copy with
its own audience, hence its own DAG), then times a DagBag parse of the DAG file the way the dag
processor does it (a fresh process, Airflow already imported), a second parse in the same
process, and a worker's parse that builds only one DAG (``get_parsing_context``). The
package is byte-compiled first, as an installed provider is.
"""

from __future__ import annotations

import argparse
import compileall
import os
import sys
import tempfile
import time
from itertools import cycle
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"
DAG_FILE = DAGS / "lytics_jobs.py"
EXAMPLES = REPO / "include" / "jobs"
GOAL_SECONDS = 2.0


def generate(directory: Path, count: int) -> list[str]:
    """Write ``count`` valid configs; returns their DAG ids."""
    sys.path.insert(0, str(REPO))
    import yaml

    from lytics_provider.jobs.loader import _JobYamlLoader, default_dag_id

    examples = [
        yaml.load(path.read_text(), Loader=_JobYamlLoader) for path in sorted(EXAMPLES.glob("*.yaml"))
    ]
    if not examples:
        raise SystemExit(f"no example configs in {EXAMPLES}")
    dag_ids = []
    for number, example in zip(range(count), cycle(examples), strict=False):
        config = dict(example)
        config.pop("dag_id", None)
        if "audience" in config:
            config["audience"] = f"{config['audience']}_{number:04d}"
        path = directory / f"job_{number:04d}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        dag_ids.append(default_dag_id(path))
    return dag_ids


class Timing:
    """Wall and CPU seconds of one call (CPU time is steadier on a busy machine)."""

    def __init__(self, action):
        wall, cpu = time.perf_counter(), time.process_time()
        self.result = action()
        self.wall = time.perf_counter() - wall
        self.cpu = time.process_time() - cpu

    def __str__(self) -> str:
        return f"{self.wall:.2f} s wall, {self.cpu:.2f} s CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500, help="number of job configs (default 500)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lytics-parse-") as tmp:
        jobs_dir = Path(tmp, "jobs")
        jobs_dir.mkdir()
        os.environ.update(
            AIRFLOW_HOME=str(Path(tmp, "airflow")),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
            LYTICS_JOBS_DIR=str(jobs_dir),
        )
        os.environ.pop("_AIRFLOW_PARSING_CONTEXT_DAG_ID", None)
        dag_ids = generate(jobs_dir, args.jobs)

        # A deployed provider has its bytecode on disk (pip compiles on install); without this a
        # machine with PYTHONDONTWRITEBYTECODE set would time compiling the package, not parsing.
        compileall.compile_dir(REPO / "lytics_provider", quiet=1)
        imported = Timing(lambda: __import__("airflow.dag_processing.dagbag"))
        from airflow.dag_processing.dagbag import DagBag

        from lytics_provider.jobs import dag_builder, loader

        bag = DagBag(dag_folder=str(DAGS), bundle_path=DAGS, bundle_name="dags-folder", collect_dags=False)
        cold = Timing(lambda: bag.process_file(str(DAG_FILE), only_if_updated=False))
        found = cold.result
        if len(found) != args.jobs or bag.import_errors:
            print(f"expected {args.jobs} DAGs and no errors, got {len(found)}: {bag.import_errors}")
            return 1
        warm = Timing(lambda: bag.process_file(str(DAG_FILE), only_if_updated=False))

        os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = dag_ids[len(dag_ids) // 2]
        worker = Timing(lambda: bag.process_file(str(DAG_FILE), only_if_updated=False))
        os.environ.pop("_AIRFLOW_PARSING_CONTEXT_DAG_ID")

        loader.clear_cache()
        configs = Timing(lambda: loader.load_jobs(jobs_dir))
        jobs = configs.result[0]
        extras = Timing(
            lambda: [
                (
                    dag_builder.build_doc_md(job),
                    dag_builder.build_params(job.config),
                    dag_builder.dag_schedule(job.config),
                )
                for job in jobs
            ]
        )
        tasks = sum(len(dag.tasks) for dag in found)

    print(f"jobs: {args.jobs} DAGs, {tasks} tasks (Airflow imported beforehand in {imported})")
    print(f"first parse (as in a fresh dag-processor child): {cold}")
    print(f"  reading + validating the {args.jobs} configs, timed alone: {configs}")
    print(f"  docs, params and timetables, timed alone: {extras}")
    print("  the rest: Airflow's DAG and operator construction (incl. jsonschema checks of every Param)")
    print(f"second parse (same process, configs cached): {warm}")
    print(f"worker parse building one DAG ({len(worker.result)} built): {worker}")
    print(
        f"goal < {GOAL_SECONDS:.0f} s for the first parse: {'met' if cold.wall < GOAL_SECONDS else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
