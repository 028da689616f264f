"""Options of the audience-event jobs (enter / exit / change events to a message bus), and their tasks.

The options are the ones of Lytics' audience triggers: "Audience Trigger Events" (``events``),
"Fields to Trigger" (``trigger_fields``), "Existing Users" (``existing_users``) and the batch size.
A job type lists :class:`AudienceEventFields` among its bases and builds ``scan`` -> ``deliver``
-> ``report`` with :func:`add_event_tasks`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from lytics_provider.jobs.base import StrictModel
from lytics_provider.jobs.operator_args import operator_kwargs

if TYPE_CHECKING:
    from lytics_provider.jobs.base import AudienceExportConfig
    from lytics_provider.jobs.context import JobContext

EventKind = Literal["enter", "exit", "change"]


class AudienceEventFields(StrictModel):
    """Which audience events a job sends and how many per call."""

    events: list[EventKind] = Field(
        default_factory=lambda: ["enter", "exit"],
        min_length=1,
        description='Audience Trigger Events: the events sent, any of "enter", "exit" and "change".',
    )
    trigger_fields: list[str] | None = Field(
        default=None,
        description="Fields to Trigger: a change event is sent only when one of these fields moved "
        "(default: any exported field).",
    )
    existing_users: bool = Field(
        default=True,
        description="Existing Users: on the first run, send an enter event for every member already in "
        "the audience; off, the first run only records the audience.",
    )
    batch_size: int = Field(default=100, ge=1, le=1000, description="Events per call.")


def add_event_tasks(config: AudienceExportConfig, job: JobContext, operator: type, **arguments: Any) -> None:
    """``scan`` -> ``deliver`` (``operator``, with every config field it takes) -> ``report``."""
    from lytics_provider.operators.lytics import LyticsAudienceScanOperator, LyticsCommitRunOperator

    fields = list(config.fields) if config.fields else None
    triggers = list(getattr(config, "trigger_fields", None) or [])
    scan = LyticsAudienceScanOperator(
        task_id="scan",
        audience="{{ params.audience }}",
        job_id=job.job_id,
        lytics_conn_id=config.lytics_conn_id,
        fields=sorted(set(fields) | set(triggers)) if fields else None,
        digest_fields=triggers or fields,
        user_limit=config.user_limit,
        identity_fields=config.identity(),
        scan_max_age_minutes=config.scan_max_age_minutes,
    )
    deliver = operator(**operator_kwargs(config, operator, task_id="deliver", job_id=job.job_id, **arguments))
    report = LyticsCommitRunOperator(task_id="report", job_id=job.job_id)
    scan >> deliver >> report
