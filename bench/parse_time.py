"""Parse time of ``dags/lytics_jobs.py`` over many generated job configs (default 500).

    .venv/bin/python bench/parse_time.py [--jobs 500]

Copies the example configs in ``include/jobs`` round-robin into a temp folder (each copy with
its own audience, hence its own DAG), then times a DagBag parse of the DAG file the way the dag
processor does it (a fresh process, Airflow already imported), a second parse in the same
process, and a worker's parse that builds only one DAG (``get_parsing_context``).
"""

from __future__ import annotations

import argparse
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


def timed(action):
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


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

        import_seconds, _ = timed(lambda: __import__("airflow.dag_processing.dagbag"))
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(DAGS), bundle_path=DAGS, bundle_name="dags-folder", collect_dags=False)
        cold, found = timed(lambda: bag.process_file(str(DAG_FILE), only_if_updated=False))
        if len(found) != args.jobs or bag.import_errors:
            print(f"expected {args.jobs} DAGs and no errors, got {len(found)}: {bag.import_errors}")
            return 1
        warm, _ = timed(lambda: bag.process_file(str(DAG_FILE), only_if_updated=False))

        os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = dag_ids[len(dag_ids) // 2]
        worker, one = timed(lambda: bag.process_file(str(DAG_FILE), only_if_updated=False))
        os.environ.pop("_AIRFLOW_PARSING_CONTEXT_DAG_ID")
        tasks = sum(len(dag.tasks) for dag in found)

    print(f"jobs: {args.jobs} DAGs, {tasks} tasks (Airflow import beforehand: {import_seconds:.2f} s)")
    print(f"first parse (fresh dag-processor child): {cold:.2f} s")
    print(f"second parse (same process, configs cached): {warm:.2f} s")
    print(f"worker parse of one DAG ({len(one)} built): {worker:.2f} s")
    print(f"goal < {GOAL_SECONDS:.0f} s for the first parse: {'met' if cold < GOAL_SECONDS else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
