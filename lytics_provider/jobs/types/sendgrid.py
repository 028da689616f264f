"""SendGrid job types: "Export Audiences" and "Import Audiences".

Export: "a new segment in SendGrid named" after the audience, "defined as ``lytics_segments``
contains <audience id>"; ``lytics_segments`` holds "a comma separated list of Lytics audience IDs
the user is currently a member of", with overflow fields ``lytics_segments_1``, ... when the list
outgrows one field; "Users will not automatically be removed from your SendGrid account, or the
list your segment is on." Any Lytics field of type string, int or date can go to a SendGrid field.

Import: "User data is batch imported daily" into ``sendgrid_users``, all contacts or the
**Import Lists**. **Import email events** (activity by webhook into ``sendgrid_activity``) is
inbound: SendGrid pushes to Lytics' collect endpoint, so there is no Airflow task for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from lytics_provider.jobs.base import AudienceExportConfig, JobConfig
from lytics_provider.jobs.exit_guard import ExitGuardFields
from lytics_provider.jobs.fields import connection_field
from lytics_provider.jobs.operator_args import operator_kwargs
from lytics_provider.jobs.sync_tasks import add_deliver_tasks

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext

CONN = connection_field("sendgrid_default", "SendGrid connection id (API key).")


class SendGridExportJob(ExitGuardFields, AudienceExportConfig):
    """Keep a SendGrid segment per audience through the contacts' ``lytics_segments`` field."""

    type: Literal["sendgrid_export"]
    sendgrid_conn_id: str = CONN
    sendgrid_list: str | None = Field(
        default=None,
        description="SendGrid list (id or name) the contacts are added to and the segment is on; "
        'default none: the segment is on "All Contacts".',
    )
    segment_name: str | None = Field(
        default=None, description="Segment name; default the Lytics audience's name."
    )
    email_field: str = Field(default="email", min_length=1, description="Lytics field with the email.")
    segments_field: str = Field(
        default="segments",
        min_length=1,
        description="Lytics field with the member's audiences (slugs or ids).",
    )
    export_fields: dict[str, str] = Field(
        default_factory=lambda: {"first_name": "first_name", "last_name": "last_name"},
        description="Lytics field -> SendGrid field: a reserved field, or a custom string, int or date field "
        "(by name).",
    )
    max_field_chars: int = Field(
        default=1000,
        ge=33,
        le=10000,
        description="Longest lytics_segments value before the overflow field lytics_segments_1 is used.",
    )
    batch_size: int = Field(
        default=30000, ge=1, le=30000, description="Contacts per upsert request (also 6 MB)."
    )
    poll_interval: float = Field(default=5.0, gt=0, description="Seconds between polls of an upsert job.")
    job_timeout: float = Field(default=3600.0, gt=0, description="Seconds to wait for one upsert job.")

    def add_tasks(self, job: JobContext) -> None:
        """``scan`` -> ``deliver`` -> ``report``."""
        from lytics_provider.transfers.lytics_to_sendgrid import LyticsToSendGridOperator

        fields = self.fields_and([self.email_field, self.segments_field, *self.export_fields])
        add_deliver_tasks(self, job, LyticsToSendGridOperator, fields)


class SendGridImportJob(JobConfig):
    """Import SendGrid contacts (all, or the Import Lists) into ``sendgrid_users``."""

    type: Literal["sendgrid_import"]
    sendgrid_conn_id: str = CONN
    import_lists: list[str] | None = Field(
        default=None, description="Import Lists: SendGrid list ids or names; default all contacts."
    )
    batch_size: int = Field(default=1000, ge=1, le=10000, description="Records per Lytics request.")
    poll_interval: float = Field(
        default=10.0, gt=0, description="Seconds between polls of the contact export."
    )

    def add_tasks(self, job: JobContext) -> None:
        """``users``."""
        from lytics_provider.transfers.sendgrid_to_lytics import SendGridUsersToLyticsOperator

        common: dict[str, Any] = {"job_id": job.job_id, "dag": job.dag}
        SendGridUsersToLyticsOperator(
            **operator_kwargs(self, SendGridUsersToLyticsOperator, task_id="users", **common)
        )
