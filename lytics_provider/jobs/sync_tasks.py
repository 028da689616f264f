"""The task chain of an audience export job: ``scan`` -> ``deliver`` -> ``report``.

A job type whose ``deliver`` task is one operator built from its config (a sync or an event
destination) calls :func:`add_deliver_tasks` from its ``add_tasks``; one that builds its
``deliver`` task itself hands it to :meth:`AudienceExportConfig.add_scan_deliver_report`.
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
