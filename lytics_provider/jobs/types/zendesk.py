"""Zendesk job types: "Export Users" (``member_of_lytics_group``) and "Import Tickets and Users".

The seed's "Zendesk Connect Audience Export" is not offered: the Zendesk Connect API it used has
no public contract to build or test against.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator

from lytics_provider.jobs.base import AudienceExportConfig, JobConfig
from lytics_provider.jobs.exit_guard import ExitGuardFields
from lytics_provider.jobs.fields import check_rfc3339, connection_field
from lytics_provider.jobs.one_task import OneTaskJob
from lytics_provider.jobs.sync_tasks import add_deliver_tasks

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext


class ZendeskExportJob(ExitGuardFields, AudienceExportConfig):
    """Export Users: set the user field member_of_lytics_group to the audience name, by email."""

    type: Literal["zendesk_export"]
    zendesk_conn_id: str = connection_field(
        "zendesk_default", "Zendesk connection: Subdomain, email, API Key."
    )
    requests_per_minute: int = Field(
        default=200, ge=1, le=2500, description="The account's API requests per minute (Zendesk plan limit)."
    )

    def add_tasks(self, job: JobContext) -> None:
        """``scan`` -> ``deliver`` -> ``report``."""
        from lytics_provider.transfers.lytics_to_zendesk import LyticsToZendeskUsersOperator

        fields = None if self.fields is None else list(dict.fromkeys(["email", "name", *self.fields]))
        add_deliver_tasks(self, job, LyticsToZendeskUsersOperator, fields, export_fields=self.fields)


# A dry run reads the first page of each export without sending it or moving the cursor.
class ZendeskImportJob(OneTaskJob, JobConfig):
    """Import Tickets and Users: incremental exports into zendesk_users and zendesk_tickets."""

    type: Literal["zendesk_import"]
    task_operator: ClassVar[str] = "lytics_provider.transfers.zendesk_to_lytics.ZendeskToLyticsOperator"
    kinds: list[Literal["users", "tickets"]] = Field(
        default=["users", "tickets"], min_length=1, description="What to import: users and/or tickets."
    )
    since: str | None = Field(
        default=None, description="RFC 3339 start of the first run (default: everything)."
    )
    per_page: int = Field(default=1000, ge=1, le=1000, description="Records per incremental-export page.")
    zendesk_conn_id: str = connection_field(
        "zendesk_default", "Zendesk connection: Subdomain, email, API Key."
    )
    requests_per_minute: int = Field(
        default=200, ge=1, le=2500, description="The account's API requests per minute (Zendesk plan limit)."
    )

    _check_since = field_validator("since")(check_rfc3339)
