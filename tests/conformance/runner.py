"""Run a job the way Airflow would: config -> job type -> DAG -> each task in order, XComs kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lytics_provider.jobs.dag_builder import build_dag
from lytics_provider.jobs.loader import LoadedJob
from lytics_provider.jobs.schema import job_types
from tests.helpers import make_context, run_task


def ordered_tasks(dag: Any) -> list[Any]:
    """The DAG's tasks, every task after its upstream tasks."""
    done: list[str] = []
    pending = sorted(dag.task_ids)
    while pending:
        ready = [t for t in pending if dag.get_task(t).upstream_task_ids <= set(done)]
        if not ready:
            raise AssertionError(f"cycle among {pending}")
        done.extend(ready)
        pending = [t for t in pending if t not in ready]
    return [dag.get_task(t) for t in done]


class JobRun:
    """One DAG run of a job config; :meth:`run` runs the tasks not done yet (a retry resumes)."""

    def __init__(self, config: dict[str, Any], job_id: str, day: int = 23, **params: Any) -> None:
        """The run of 2026-11-``day`` 00:00 UTC (a later day for each Keep Updated run)."""
        import pendulum

        job_config = job_types()[config["type"]](**config)
        loaded = LoadedJob(path=Path(f"{job_id}.yaml"), config=job_config, dag_id=job_id)
        self.dag = build_dag(loaded, register=False)
        defaults = {name: self.dag.params[name] for name in self.dag.params}
        logical = pendulum.datetime(2026, 11, day, tz="UTC")
        self.context = make_context(
            run_id=f"scheduled__{logical.isoformat()}",
            params={**defaults, **params},
            logical_date=logical,
            data_interval_start=logical,
            data_interval_end=logical,
        )
        self.context["dag"] = self.dag
        self.done: list[str] = []

    @property
    def xcoms(self) -> dict[str, Any]:
        return self.context["ti"].xcoms

    def run(self, until: str | None = None) -> dict[str, Any]:
        """Run the remaining tasks (through ``until`` when given); return the XComs by task id."""
        for task in ordered_tasks(self.dag):
            if task.task_id in self.done:
                continue
            task.render_template_fields(self.context)  # as the task runner does before execute
            run_task(task, self.context)
            self.done.append(task.task_id)
            if task.task_id == until:
                break
        return self.xcoms
