"""Validated job configs -> Airflow DAGs, and bad configs -> Airflow import errors.

A bad config never hides the other jobs: the DAG file gets every good DAG, and each bad file
becomes its own import error, keyed by the YAML file's path, in the DagBag that is parsing the
DAG file (the dag processor's, ``airflow dags list --local``'s or a test's). Airflow stores those
errors like any other import error, so they show in the UI banner, in
``airflow dags list-import-errors`` and in the REST API's ``importErrors``.

The dag processor treats an error keyed by a file outside its bundle's DAG files as orphaned
when it refreshes the bundle (``[dag_processor] refresh_interval``): it drops it, and the next
parse of the DAG file (``min_file_process_interval``) records it again. The same sweep removes
the error of a file that has been fixed.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pendulum

from lytics_provider.jobs.context import JobContext
from lytics_provider.jobs.errors import JobConfigError, JobConfigWarning, display_path, is_secret_name
from lytics_provider.jobs.loader import LoadedJob, load_jobs
from lytics_provider.jobs.scan_sharing import share_scan_fields, sharing_partners
from lytics_provider.jobs.schedule import dag_schedule, describe_schedule

if TYPE_CHECKING:
    from airflow.sdk import DAG, Param

    from lytics_provider.jobs.base import JobConfig

log = logging.getLogger(__name__)

PARAM_DESCRIPTIONS = {
    "audience": "Audience (segment) slug or id to export in this run; defaults to the config's audience.",
    "full_refresh": "Send every member of the audience, not only the changes since the last run.",
    "dry_run": "Report what would be sent (adds, changes, removals) without sending or committing anything.",
    "allow_mass_exit": "Let this run remove or unsubscribe more members than max_exit_fraction allows "
    "(the exit guard).",
}
_JSON_TYPES: tuple[tuple[type, str], ...] = ((bool, "boolean"), (int, "integer"), (float, "number"))


def _param_type(value: Any) -> str | list[str] | None:
    for python_type, json_type in _JSON_TYPES:
        if isinstance(value, python_type):
            return json_type
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    if value is None:
        return ["null", "string"]
    return None


PARAM_SCHEMA_DIALECT = "http://json-schema.org/draft-07/schema#"


def build_params(config: JobConfig) -> dict[str, Param]:
    """The job's run-time options as typed ``Param``s for the trigger form and the REST ``conf``."""
    from airflow.sdk import Param

    params: dict[str, Param] = {}
    for name, value in config.params().items():
        # Declaring draft-07 makes Airflow's per-Param jsonschema check five times cheaper than
        # the 2020-12 default (whose meta-schema spans seven documents); the keywords used here
        # mean the same in both.
        schema: dict[str, Any] = {"$schema": PARAM_SCHEMA_DIALECT}
        json_type = _param_type(value)
        if json_type is not None:
            schema["type"] = json_type
        if json_type == "string" and value:
            schema["minLength"] = 1
        description = PARAM_DESCRIPTIONS.get(name, f"Override '{name}' for this run.")
        params[name] = Param(
            value, title=name.replace("_", " ").capitalize(), description=description, **schema
        )
    return params


_SECRET_KEY = re.compile(
    r"^(?P<lead>[ \t]*(?:-[ \t]+)?['\"]?)"
    r"(?P<key>[\w.-]*(?:password|secret|token|api_?key|private_key|passphrase)[\w.-]*)"
    r"(?P<sep>['\"]?[ \t]*:[ \t]*)\S.*$",
    re.IGNORECASE | re.MULTILINE,
)


def _secret_values(config: JobConfig) -> set[str]:
    """Values of the config's secret-named fields (job configs normally have none)."""
    return {
        str(value)
        for name in type(config).model_fields
        if is_secret_name(name) and (value := getattr(config, name)) not in (None, "")
    }


def _redacted_source(text: str, config: JobConfig) -> str:
    """The config file's text with the value of any secret-named key replaced by ``***``."""
    for secret in sorted(_secret_values(config), key=len, reverse=True):
        text = text.replace(secret, "***")
    return _SECRET_KEY.sub(r"\g<lead>\g<key>\g<sep>'***'", text)


def build_doc_md(loaded: LoadedJob) -> str:
    """Markdown for the DAG's docs panel: where the config lives, what it says, what a run can override."""
    config = loaded.config
    source = display_path(loaded.path)
    shown = _redacted_source(loaded.source, config) if loaded.source else "# (config text not available)"
    overrides = ", ".join(f"`{name}`" for name in config.params()) or "none"
    return (
        f"### Lytics job `{loaded.dag_id}`\n\n"
        f"- **Type:** `{config.type}`\n"
        f"- **Schedule:** {describe_schedule(config)}\n"
        f"- **Config file:** `{source}`\n"
        f"- **Run overrides** (Trigger DAG form or REST `conf`): {overrides}\n\n"
        f"Edit the config file to change this DAG; check it with `lytics-airflow validate {source}`.\n\n"
        f"```yaml\n{shown.rstrip()}\n```\n"
    )


def run_note_callbacks() -> list[object]:
    """Failure callbacks that make the failed task's error the DAG run's note (``jobs/run_note.py``)."""
    from lytics_provider.jobs.run_note import note_failed_run

    return [note_failed_run]


def add_job_assets(dag: DAG, config: JobConfig) -> None:
    """The audience as the ``deliver`` task's inlet, the destination as its outlet (``jobs/assets.py``)."""
    from lytics_provider.jobs.assets import declare_assets

    declare_assets(dag, config)


def build_dag(loaded: LoadedJob, register: bool = True) -> DAG:
    """One job -> one DAG, with its schedule, params, docs and the job type's tasks.

    ``register=False`` builds a DAG the DagBag parsing the file does not pick up.
    """
    from airflow.sdk import DAG

    from lytics_provider.jobs.alerts import add_alerts_task, failure_callbacks

    config = loaded.config
    tags = list(dict.fromkeys(["lytics", config.type, *config.tags]))
    start_date = pendulum.parse(config.start_date, tz=config.timezone)
    on_failure = [*failure_callbacks(config.alerts), *run_note_callbacks()]
    with DAG(
        dag_id=loaded.dag_id,
        schedule=dag_schedule(config),
        start_date=start_date,
        catchup=False,
        max_active_runs=1,
        default_args={
            "owner": config.owner,
            "retries": config.retries,
            "retry_delay": timedelta(minutes=config.retry_delay_minutes),
            **({"on_failure_callback": on_failure} if on_failure else {}),
        },
        tags=tags,
        description=config.description
        or f"Lytics {config.type.replace('_', ' ')}: {describe_schedule(config)}",
        doc_md=build_doc_md(loaded),
        params=build_params(config),
        auto_register=register,
    ) as dag:
        config.add_tasks(JobContext(dag=dag, job_id=loaded.dag_id, source=loaded.path))
        add_job_assets(dag, config)
        add_alerts_task(dag, config.alerts)
    return dag


def build_error(job: LoadedJob, exc: Exception) -> JobConfigError:
    """A DAG that failed to build (the job type refused its config) as an error on its file."""
    return JobConfigError.single(
        job.path, f"cannot build DAG '{job.dag_id}': {type(exc).__name__}: {exc}; fix the config"
    )


def _active_dagbag() -> Any:
    """The DagBag whose ``process_file`` is importing the calling DAG file, if any."""
    dagbag_module = sys.modules.get("airflow.dag_processing.dagbag")
    if dagbag_module is None:
        return None
    dagbag_class = dagbag_module.DagBag
    frame = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, dagbag_class):
            return candidate
        frame = frame.f_back
    return None


def import_error_key(path: Path, bundle_path: str | os.PathLike[str] | None) -> str:
    """How Airflow keys an import error: relative to the bundle root when there is one, else absolute."""
    absolute = os.path.abspath(path)
    if bundle_path is None:
        return absolute
    return os.path.relpath(absolute, os.path.abspath(bundle_path))


def report_errors(errors: list[JobConfigError]) -> None:
    """Log each bad config and register it as an import error of its own YAML file.

    Outside a DagBag (a plain ``import`` of the DAG file) each error becomes a
    :class:`JobConfigWarning` instead.
    """
    if not errors:
        return
    bag = _active_dagbag()
    for error in errors:
        log.error("Lytics job config rejected:\n%s", error.message)
        if bag is None:
            warnings.warn(error.message, JobConfigWarning, stacklevel=2)
            continue
        bag.import_errors[import_error_key(error.path, getattr(bag, "bundle_path", None))] = error.message


def build_dags(directory: str | os.PathLike[str], *, only_dag_id: str | None = None) -> dict[str, DAG]:
    """Every job below ``directory`` as a DAG, by DAG id; bad configs are reported, never raised.

    ``only_dag_id`` (a worker parsing the file to run one task) builds just that DAG (and, not
    registered, the DAGs of the jobs sharing its audience scans; see ``jobs.scan_sharing``).
    """
    jobs, errors = load_jobs(directory)
    partners: list[LoadedJob] = []
    if only_dag_id is not None:
        chosen = [job for job in jobs if job.dag_id == only_dag_id]
        partners = sharing_partners(jobs, chosen)
        jobs = chosen
        errors = []
    dags: dict[str, DAG] = {}
    built: list[tuple[LoadedJob, DAG]] = []
    for job in jobs:
        try:
            dags[job.dag_id] = build_dag(job)
        except Exception as exc:
            errors.append(build_error(job, exc))
        else:
            built.append((job, dags[job.dag_id]))
    for job in partners:
        try:
            built.append((job, build_dag(job, register=False)))
        except Exception:  # reported by the parse that builds that job's own DAG
            continue
    share_scan_fields(built)
    report_errors(errors)
    return dags


def jobs_directory(dag_file: str | os.PathLike[str]) -> Path:
    """``$LYTICS_JOBS_DIR``, else ``include/jobs`` next to the folder holding the DAG file."""
    configured = os.environ.get("LYTICS_JOBS_DIR")
    if configured:
        return Path(configured)
    return Path(dag_file).absolute().parent.parent / "include" / "jobs"
