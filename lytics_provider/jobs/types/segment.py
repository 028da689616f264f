"""Segment job type: "Export", audience enters and exits as Identify or Track calls.

The seed's Segment page names no option but the write key (the ``segment`` connection) and the
choice of Identify or Track; the event options are the other real-time exports' ("Existing
Users": Lytics runs "a backfill of users if configured", "Audience Trigger Events", "Fields to
Trigger").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from lytics_provider.jobs.event_fields import AudienceEventFields
from lytics_provider.jobs.fields import connection_field

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext


class SegmentExportJob(AudienceEventFields):
    """Send an audience's enters and exits to a Segment source as Identify or Track calls."""

    type: Literal["segment_export"]
    segment_conn_id: str = connection_field(
        "segment_default", "Segment connection id (Airflow's segment connection; the write key in the extra)."
    )
    call_type: Literal["identify", "track"] = Field(
        default="identify",
        description='"identify" sets the trait audience_{audience_name} true on enter and false on exit; '
        '"track" sends the event "enter" or "exit". Other fields go in traits / properties.',
    )
    user_id_field: str = Field(default="_uid", min_length=1, description="Member field sent as userId.")
    anonymous_id_field: str | None = Field(
        default=None, description="Member field sent as anonymousId when the userId field is empty."
    )
    batch_size: int = Field(
        default=100,
        ge=1,
        le=2500,
        description="Events per checkpoint; each batch goes in /v1/batch requests of at most 500 KB.",
    )

    @model_validator(mode="after")
    def _identity_fields_exported(self) -> SegmentExportJob:
        needed = [f for f in (self.user_id_field, self.anonymous_id_field) if f and f != "_uid"]
        missing = [f for f in needed if self.fields is not None and f not in self.fields]
        if missing:
            raise ValueError(
                f"fields lists the fields to export but not {missing}; add them to fields "
                "(user_id_field / anonymous_id_field are read from the scanned member)"
            )
        return self

    def exported_fields(self) -> list[str] | None:
        """Each event carries the job's ``fields``."""
        return list(self.fields) if self.fields else None

    def add_tasks(self, job: JobContext) -> None:
        """``scan`` -> ``deliver`` -> ``report``."""
        from lytics_provider.transfers.lytics_to_segment import LyticsToSegmentOperator

        self.add_event_tasks(job, LyticsToSegmentOperator)
