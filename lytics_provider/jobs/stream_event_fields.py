"""Options every audience-events job shares, and its ``scan`` -> ``deliver`` -> ``report`` wiring.

An events job (a stream or queue that receives enter / exit / change events) takes these fields
and builds its tasks with :func:`add_event_tasks`; its ``deliver`` operator is an
:class:`~lytics_provider.sync.events_operator.AudienceEventsOperator`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from lytics_provider.jobs.base import AudienceExportConfig
from lytics_provider.jobs.exit_guard import ExitGuardFields
from lytics_provider.jobs.operator_args import operator_kwargs

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext

EventKind = Literal["enter", "exit", "change"]


class AudienceEventFields(ExitGuardFields, AudienceExportConfig):
    """ "Audience Trigger Events", "Fields to Trigger", "Export Fields" and "Existing Users"."""

    events: list[EventKind] = Field(
        default_factory=lambda: ["enter", "exit"],
        min_length=1,
        description="Audience Trigger Events: the kinds sent: enter, exit, change (a watched field moved).",
    )
    trigger_fields: list[str] | None = Field(
        default=None,
        description="Fields to Trigger: a change event is sent only when one of these fields moved "
        "(default: any field).",
    )
    export_fields: list[str] | None = Field(
        default=None,
        description="Export Fields: the user fields each event carries; default every field of the profile.",
    )
    existing_users: bool = Field(
        default=True,
        description="Existing Users: the first run sends an enter event for every member already in the "
        "audience; off, the first run only records them and later runs send what changed.",
    )

    @field_validator("events")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    def scan_fields(self) -> list[str] | None:
        """What the scan fetches: the exported and trigger fields (None: every field)."""
        if self.export_fields is None and self.fields is None:
            return None
        named = [*(self.export_fields or self.fields or []), *(self.trigger_fields or [])]
        return list(dict.fromkeys(n.split(".")[0] for n in named))


def add_event_tasks(config: AudienceEventFields, job: JobContext, operator: type, **extra: Any) -> None:
    """``scan`` -> ``deliver`` (``operator`` with the config's options) -> ``report``."""
    from lytics_provider.operators.lytics import LyticsAudienceScanOperator, LyticsCommitRunOperator

    scan_fields = config.scan_fields()
    scan = LyticsAudienceScanOperator(
        task_id="scan",
        audience="{{ params.audience }}",
        job_id=job.job_id,
        lytics_conn_id=config.lytics_conn_id,
        fields=scan_fields,
        digest_fields=config.trigger_fields or scan_fields,
        user_limit=config.user_limit,
        identity_fields=config.identity(),
        scan_max_age_minutes=config.scan_max_age_minutes,
    )
    deliver = operator(**operator_kwargs(config, operator, task_id="deliver", job_id=job.job_id, **extra))
    report = LyticsCommitRunOperator(task_id="report", job_id=job.job_id)
    scan >> deliver >> report
