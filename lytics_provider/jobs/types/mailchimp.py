"""Mailchimp job types: "Export Audiences" and "Import Audiences".

Export: "On each run of the job, it will sync your selected Lytics Audiences with your selected
Mailchimp List"; "Custom fields are not exported to Mailchimp" (the member's email, first and
last name go as ``FNAME`` / ``LNAME``). The Lytics audience is a tag on the list's members.

Import: ``mailchimp_subscribers`` and ``mailchimp_activity``, a "Batch Integration every 12
hours" (the default frequency of a Keep Updated import). **One-Time Subscriber/Unsubscriber
Sync** brings the subscribe / unsubscribe data only, no activity data, once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from lytics_provider.jobs.base import AudienceExportConfig, JobConfig
from lytics_provider.jobs.exit_guard import ExitGuardFields
from lytics_provider.jobs.fields import connection_field
from lytics_provider.jobs.operator_args import operator_kwargs
from lytics_provider.jobs.sync_tasks import add_deliver_tasks

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext

CONN = connection_field("mailchimp_default", "Mailchimp connection id (API key).")
LIST = Field(min_length=1, description="Mailchimp List: the Mailchimp audience (list) id or its exact name.")


class MailchimpExportJob(ExitGuardFields, AudienceExportConfig):
    """Tag the members of a Lytics audience in a Mailchimp audience (list), adding new ones."""

    type: Literal["mailchimp_export"]
    mailchimp_conn_id: str = CONN
    mailchimp_list: str = LIST
    tag: str | None = Field(
        default=None,
        description="Mailchimp tag of the audience's members; default the Lytics audience's name.",
    )
    email_field: str = Field(default="email", min_length=1, description="Lytics field with the email.")
    on_exit: Literal["remove_tag", "ignore"] = Field(
        default="remove_tag",
        description='"remove_tag" takes the tag off members who exit (only members this job tagged); '
        '"ignore" leaves them. Members are never unsubscribed, and unsubscribed or cleaned members are '
        "never resubscribed.",
    )
    batch_size: int = Field(
        default=1000, ge=1, le=5000, description="Members per Batch-endpoint request (two operations each)."
    )
    poll_interval: float = Field(default=5.0, gt=0, description="Seconds between polls of a running batch.")
    batch_timeout: float = Field(default=3600.0, gt=0, description="Seconds to wait for one batch.")
    max_connections: int = Field(
        default=10, ge=1, le=10, description="Requests in flight at once for the API key, across tasks."
    )

    def add_tasks(self, job: JobContext) -> None:
        """``scan`` -> ``deliver`` -> ``report``."""
        from lytics_provider.transfers.lytics_to_mailchimp import LyticsToMailchimpOperator

        add_deliver_tasks(self, job, LyticsToMailchimpOperator, self.fields_and([self.email_field]))


class MailchimpImportJob(JobConfig):
    """Import a Mailchimp audience's members into ``mailchimp_subscribers`` and its campaigns'
    activity into ``mailchimp_activity``."""

    type: Literal["mailchimp_import"]
    frequency: str = Field(
        default="every 12 hours",
        description='How often a Keep Updated import runs; default "every 12 hours" (the batch interval).',
    )
    mailchimp_conn_id: str = CONN
    mailchimp_list: str = LIST
    one_time_subscriber_unsubscriber_sync: bool = Field(
        default=False,
        description="One-Time Subscriber/Unsubscriber Sync: import the subscribe / unsubscribe data once, "
        "without activity data (keep_updated must be false).",
    )
    batch_size: int = Field(default=1000, ge=1, le=10000, description="Records per Lytics request.")

    @model_validator(mode="after")
    def _one_time(self) -> MailchimpImportJob:
        if self.one_time_subscriber_unsubscriber_sync and self.keep_updated:
            raise ValueError(
                "one_time_subscriber_unsubscriber_sync runs once: set keep_updated to false, or drop "
                "one_time_subscriber_unsubscriber_sync for the continuous import"
            )
        return self

    def params(self) -> dict[str, Any]:
        return {"dry_run": False}

    def add_tasks(self, job: JobContext) -> None:
        """``subscribers`` (-> ``activity`` unless one-time)."""
        from lytics_provider.transfers.mailchimp_to_lytics import (
            MailchimpActivityToLyticsOperator,
            MailchimpSubscribersToLyticsOperator,
        )

        common: dict[str, Any] = {"job_id": job.job_id, "dag": job.dag}
        users = MailchimpSubscribersToLyticsOperator(
            **operator_kwargs(self, MailchimpSubscribersToLyticsOperator, task_id="subscribers", **common)
        )
        if not self.one_time_subscriber_unsubscriber_sync:
            activity = MailchimpActivityToLyticsOperator(
                **operator_kwargs(self, MailchimpActivityToLyticsOperator, task_id="activity", **common)
            )
            users >> activity
