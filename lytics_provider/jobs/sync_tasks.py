"""The task chain of an audience export job: ``scan`` -> ``deliver`` -> ``report``.

A job type whose ``deliver`` task is one operator built from its config (a sync or an event
destination) calls :func:`add_scan_deliver_report` from its ``add_tasks``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lytics_provider.jobs.operator_args import operator_kwargs

if TYPE_CHECKING:
    from lytics_provider.jobs.base import AudienceExportConfig
    from lytics_provider.jobs.context import JobContext


def add_scan_deliver_report(
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
    :param digest_fields: the fields whose change makes a member "changed" (default ``fields``).
    :param arguments: deliver arguments that are not config fields of the same name.
    """
    from lytics_provider.operators.lytics import LyticsAudienceScanOperator, LyticsCommitRunOperator

    scan = LyticsAudienceScanOperator(
        task_id="scan",
        audience="{{ params.audience }}",
        job_id=job.job_id,
        lytics_conn_id=config.lytics_conn_id,
        fields=fields,
        digest_fields=digest_fields or fields,
        user_limit=config.user_limit,
        identity_fields=config.identity(),
        scan_max_age_minutes=config.scan_max_age_minutes,
        dag=job.dag,
    )
    deliver = operator(
        **operator_kwargs(config, operator, task_id="deliver", job_id=job.job_id, dag=job.dag, **arguments)
    )
    report = LyticsCommitRunOperator(task_id="report", job_id=job.job_id, dag=job.dag)
    scan >> deliver >> report
