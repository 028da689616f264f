"""The fields a shared audience scan fetches: what every job scanning that audience needs.

Jobs that scan the same audience through the same Lytics connection share one scan (see
``pipeline.shared_scan``). Whichever of them runs first fetches the union of their fields, so
the others can read it: this module sets that union (``scan_fields``) and each job's
``scan_max_age_minutes`` on the scan tasks once the DAGs are built. A worker that builds only
the DAG it runs also builds, unregistered, the DAGs of the jobs it shares an audience with, so it
computes the same union as the dag processor.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import DAG

    from lytics_provider.jobs.base import JobConfig
    from lytics_provider.jobs.loader import LoadedJob

ALL_FIELDS = "all"
_PARAM_REFERENCE = re.compile(r"^\{\{\s*params\.(\w+)\s*\}\}$")


def configured_audiences(config: JobConfig) -> set[str]:
    """The audiences a job config names (``audience``, or each entry of ``audiences``)."""
    found = set()
    audience = getattr(config, "audience", None)
    if isinstance(audience, str):
        found.add(audience)
    for entry in getattr(config, "audiences", None) or ():
        name = getattr(entry, "audience", None)
        if isinstance(name, str):
            found.add(name)
    return found


def sharing_partners(jobs: Iterable[LoadedJob], chosen: Iterable[LoadedJob]) -> list[LoadedJob]:
    """The jobs outside ``chosen`` that scan an audience a chosen job scans (same connection)."""
    chosen = list(chosen)
    ids = {job.dag_id for job in chosen}
    wanted = {scan for job in chosen for scan in _scans(job.config)}
    return [job for job in jobs if job.dag_id not in ids and wanted & _scans(job.config)]


def _scans(config: JobConfig) -> set[tuple[str, str]]:
    return {(config.lytics_conn_id, audience) for audience in configured_audiences(config)}


def _default_audience(task: Any, dag: DAG) -> str:
    """The audience a scan task reads when a run does not override it."""
    match = _PARAM_REFERENCE.match(str(task.audience).strip())
    if match and match.group(1) in dag.params:
        return str(dag.params[match.group(1)])
    return str(task.audience)


def share_scan_fields(built: Iterable[tuple[LoadedJob, DAG]]) -> None:
    """Set ``scan_max_age_minutes`` (from each job's config) and ``scan_fields`` (the union of the
    fields of every sharing scan task on the same connection and audience) on the scan tasks."""
    from lytics_provider.operators.lytics import LyticsAudienceScanOperator

    groups: dict[tuple[str, str], list[LyticsAudienceScanOperator]] = defaultdict(list)
    for job, dag in built:
        max_age = getattr(job.config, "scan_max_age_minutes", None)
        for task in dag.tasks:
            if not isinstance(task, LyticsAudienceScanOperator):
                continue
            if max_age is not None:
                task.scan_max_age_minutes = max_age
            if task.scan_max_age_minutes and task.user_limit is None:
                groups[(task.lytics_conn_id, _default_audience(task, dag))].append(task)
    for tasks in groups.values():
        if any(task.fields is None for task in tasks):
            union: list[str] | str = ALL_FIELDS
        else:
            union = sorted({name for task in tasks for name in task.fields or ()})
        for task in tasks:
            task.scan_fields = union
