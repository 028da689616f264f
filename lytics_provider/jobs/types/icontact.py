"""iContact job types: "Import User and Activity Data" and "Export Audience to List".

Schedule of the import: the integration page says both "Batch Integration every 24 hours" and,
for Keep Updated, "run this import every hour". The option the user actually sets is Keep
Updated, so a Keep Updated import runs **hourly** by default; ``frequency: daily`` gives the
24-hour cadence. Without Keep Updated the import runs once.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from lytics_provider.jobs.base import AudienceExportConfig, JobConfig
from lytics_provider.jobs.context import JobContext
from lytics_provider.jobs.fields import connection_field
from lytics_provider.jobs.operator_args import operator_kwargs
from lytics_provider.jobs.sync_tasks import add_deliver_tasks


def _check_timezone(value: str) -> str:
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(value)
    except Exception:
        raise ValueError(f"unknown timezone {value!r}; use an IANA name such as America/New_York") from None
    return value


class IContactImportJob(JobConfig):
    """Import iContact contacts into ``icontact_users`` and message activity into ``icontact_activity``."""

    type: Literal["icontact_import"]
    frequency: str = Field(
        default="hourly",
        description='How often a Keep Updated import runs; "hourly" (the default, as the Keep Updated '
        'option documents) or e.g. "daily" for the 24-hour batch.',
    )
    icontact_conn_id: str = connection_field("icontact_default", "iContact connection id.")
    source_account: str | None = Field(
        default=None,
        description="iContact account id to import from; default the connection's, else the first.",
    )
    source_client_folder: str | None = Field(
        default=None, description="Client folder id to import; default the connection's, else the first."
    )
    filter_by_aid: bool = Field(
        default=False,
        description='"Filter by AID": only process messages whose HTML body carries '
        "<!-- lytics-aid:AID --> and the users tagged by them (named in their bounces, opens, clicks "
        "or unsubscribes); needs aid.",
    )
    aid: int | None = Field(default=None, ge=0, description="Your Lytics account AID, for filter_by_aid.")
    source_timezone: str = Field(
        default="America/New_York",
        description="Timezone of iContact timestamps that carry no offset (contact create dates).",
    )
    lookback_minutes: int = Field(
        default=1440,
        ge=0,
        le=20160,
        description="Events up to this long before the newest imported one are checked for late arrivals.",
    )
    page_size: int = Field(default=500, ge=1, le=1000, description="iContact rows per page.")

    @field_validator("source_timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return _check_timezone(value)

    @model_validator(mode="after")
    def _aid_needed(self) -> IContactImportJob:
        if self.filter_by_aid and self.aid is None:
            raise ValueError(
                "filter_by_aid is true but aid is missing; set aid to your Lytics account AID "
                "(the number in <!-- lytics-aid:AID -->) or set filter_by_aid to false"
            )
        return self

    def add_tasks(self, job: JobContext) -> None:
        """``users`` → ``activity`` → ``report``."""
        from lytics_provider.transfers.icontact_to_lytics import (
            IContactActivityToLyticsOperator,
            IContactImportReportOperator,
            IContactUsersToLyticsOperator,
        )

        common: dict[str, Any] = {
            "job_id": job.job_id,
            "dag": job.dag,
            "aid": self.aid if self.filter_by_aid else None,
        }
        users = IContactUsersToLyticsOperator(
            **operator_kwargs(self, IContactUsersToLyticsOperator, task_id="users", **common)
        )
        activity = IContactActivityToLyticsOperator(
            **operator_kwargs(self, IContactActivityToLyticsOperator, task_id="activity", **common)
        )
        report = IContactImportReportOperator(task_id="report", job_id=job.job_id, dag=job.dag)
        users >> activity >> report


class IContactExportJob(AudienceExportConfig):
    """Subscribe the members of a Lytics audience to an iContact list."""

    type: Literal["icontact_export"]
    icontact_conn_id: str = connection_field("icontact_default", "iContact connection id.")
    destination_account: str | None = Field(
        default=None, description="iContact account id; default the connection's, else the first."
    )
    destination_client_folder: str | None = Field(
        default=None, description="Client folder id; default the connection's, else the first."
    )
    destination_list: str = Field(min_length=1, description="iContact list id or exact list name.")
    batch_size: int = Field(default=500, ge=1, le=5000, description="Members per subscriptions POST.")
    create_missing_contacts: bool = Field(
        default=True,
        description="Create iContact contacts (by email) for members without an iContact Distinct ID; "
        "false sends only members that have one and rejects the rest.",
    )

    def identifier_fields(self) -> list[str]:
        """The iContact Distinct ID, then the email (what the export matches contacts by)."""
        return ["ic_contact_id", "email"]

    def add_tasks(self, job: JobContext) -> None:
        """``scan`` → ``deliver`` → ``report``."""
        from lytics_provider.transfers.lytics_to_icontact import EXPORT_FIELDS, LyticsToIContactListOperator

        fields = list(dict.fromkeys([*EXPORT_FIELDS, *(self.fields or [])]))
        add_deliver_tasks(self, job, LyticsToIContactListOperator, fields, ["ic_contact_id", "email"])
