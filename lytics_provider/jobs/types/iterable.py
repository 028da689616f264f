"""Iterable job type: "Export Audiences" to an existing or a new Iterable list.

The seed: "export a Lytics audience to an existing Iterable list or create a new Iterable list";
on enter the user is created or updated and subscribed to the list ("Anonymous users go through
the ``preferUserId`` flag on ``/api/lists/subscribe``"), on exit unsubscribed from the list;
optional **Fields to Trigger**. Authorization: the **Iterable API Key** (the ``iterable``
connection).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from lytics_provider.jobs.base import AudienceExportConfig
from lytics_provider.jobs.exit_guard import ExitGuardFields
from lytics_provider.jobs.fields import connection_field
from lytics_provider.jobs.sync_tasks import add_deliver_tasks

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext


class IterableExportJob(ExitGuardFields, AudienceExportConfig):
    """Subscribe an audience to an Iterable list; members who leave are unsubscribed from it."""

    type: Literal["iterable_export"]
    iterable_conn_id: str = connection_field("iterable_default", "Iterable connection id (Iterable API Key).")
    list_id: int | None = Field(default=None, ge=1, description="The existing Iterable list's id.")
    list_name: str | None = Field(
        default=None,
        min_length=1,
        description="The list's name when list_id is unset (created when missing).",
    )
    create_list: bool = Field(
        default=True, description="Create the list named list_name when it does not exist."
    )
    email_field: str | None = Field(
        default="email", description="Member field sent as the subscriber's email."
    )
    user_id_field: str | None = Field(
        default=None, description="Member field sent as the subscriber's userId."
    )
    prefer_user_id: bool = Field(
        default=False,
        description="Subscribe members without an email by userId (preferUserId; Iterable makes a "
        "placeholder email). Needs user_id_field.",
    )
    fields: list[str] | None = Field(
        default=None, description="Lytics fields sent as the subscribers' dataFields (default none)."
    )
    fields_to_trigger: list[str] | None = Field(
        default=None,
        description="Fields to Trigger: a subscribed member is sent again only when one of these moved "
        "(default: any exported field).",
    )
    batch_size: int = Field(default=1000, ge=1, le=1000, description="Subscribers per request.")

    @model_validator(mode="after")
    def _list_and_identifier(self) -> IterableExportJob:
        if self.list_id is None and not self.list_name:
            raise ValueError("set list_id (an existing list) or list_name (found, or created when missing)")
        if not self.email_field and not self.user_id_field:
            raise ValueError(
                "set email_field or user_id_field: the member field Iterable identifies users by"
            )
        if self.prefer_user_id and not self.user_id_field:
            raise ValueError("prefer_user_id needs user_id_field (the member field holding the userId)")
        return self

    def identifier_fields(self) -> list[str]:
        return [f for f in (self.email_field, self.user_id_field) if f]

    def add_tasks(self, job: JobContext) -> None:
        """``scan`` -> ``deliver`` -> ``report``; config field names equal the operator's arguments."""
        from lytics_provider.transfers.lytics_to_iterable import LyticsToIterableListOperator

        fields = self.fields_and(self.identifier_fields())
        add_deliver_tasks(self, job, LyticsToIterableListOperator, fields, self.fields_to_trigger)
