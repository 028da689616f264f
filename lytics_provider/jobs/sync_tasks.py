"""The task chain of an audience export job: ``scan`` -> ``deliver`` -> ``report``.

A job type whose ``deliver`` task is one operator built from its config (a sync or an event
destination) calls :func:`add_deliver_tasks` from its ``add_tasks``; one that builds its
``deliver`` task itself hands it to :meth:`AudienceExportConfig.add_scan_deliver_report`, and one
with a chain per audience calls :func:`add_scan_chain` for each.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from lytics_provider.jobs.operator_args import operator_kwargs

if TYPE_CHECKING:
    from lytics_provider.jobs.base import AudienceExportConfig
    from lytics_provider.jobs.context import JobContext


def field_roots(names: Iterable[str | None]) -> list[str]:
    """The profile fields ``names`` read (``a.b`` reads ``a``), each once, in order; unset names skipped."""
    return list(dict.fromkeys(name.split(".")[0] for name in names if name))


def add_scan_chain(
    job: JobContext,
    deliver: Any,
    *,
    lytics_conn_id: str,
    audience: str = "{{ params.audience }}",
    job_id: str | None = None,
    suffix: str = "",
    **scan_options: Any,
) -> None:
    """``scan<suffix>`` -> ``deliver`` -> ``report<suffix>``: the audience's scan before the delivery
    task, and after it the run report that makes the scan the next run's baseline.

    :param job: the job being built (its id and DAG).
    :param deliver: the delivery task.
    :param lytics_conn_id: the Lytics connection the scan reads.
    :param audience: the audience scanned (default: the run's ``audience`` param).
    :param job_id: the id the scan and report keep their run state under (default the job's).
    :param suffix: added to the scan and report task ids when a job has a chain per audience.
    :param scan_options: the scan task's other arguments (``fields``, ``digest_fields``,
        ``user_limit``, ``identity_fields``, ...).
    """
    from lytics_provider.operators.lytics import LyticsAudienceScanOperator, LyticsCommitRunOperator

    run_id = job_id or job.job_id
    scan = LyticsAudienceScanOperator(
        task_id=f"scan{suffix}",
        audience=audience,
        job_id=run_id,
        lytics_conn_id=lytics_conn_id,
        dag=job.dag,
        **scan_options,
    )
    report = LyticsCommitRunOperator(
        task_id=f"report{suffix}",
        job_id=run_id,
        scan_task_id=scan.task_id,
        deliver_task_id=deliver.task_id,
        dag=job.dag,
    )
    scan >> deliver >> report


def add_deliver_tasks(
    config: AudienceExportConfig,
    job: JobContext,
    operator: type,
    fields: list[str] | None,
    digest_fields: list[str] | None = None,
    **arguments: Any,
) -> None:
    """``scan`` (of ``fields``) -> ``deliver`` (``operator``, with every config field it takes) -> ``report``.

    :param config: the job's validated config.
    :param job: the job being built (its id and DAG).
    :param operator: the deliver operator class.
    :param fields: the fields the scan reads (None: every field).
    :param digest_fields: the fields whose change makes a member "changed" (None: any field).
    :param arguments: deliver arguments that are not config fields of the same name.
    """
    deliver = operator(
        **operator_kwargs(config, operator, task_id="deliver", job_id=job.job_id, dag=job.dag, **arguments)
    )
    config.add_scan_deliver_report(
        job,
        deliver,
        fields=fields,
        digest_fields=digest_fields,
        scan_max_age_minutes=config.scan_max_age_minutes,
    )
