"""Iterable job types: "Export Audiences" to an existing or a new Iterable list, and "Import
Audiences & Activity Data".

The seed: "export a Lytics audience to an existing Iterable list or create a new Iterable list";
on enter the user is created or updated and subscribed to the list ("Anonymous users go through
the ``preferUserId`` flag on ``/api/lists/subscribe``"), on exit unsubscribed from the list;
optional **Fields to Trigger**. The import reads users and activity (the seed's streams
``iterable_users``, ``iterable_activity``, ``iterable_in_app_activity``, ``iterable_push_activity``,
``iterable_sms_activity``), "updated hourly" with **Keep Updated**; its option list was not
captured, so the options here are the ones that behaviour needs. Authorization: the **Iterable API
Key** (the ``iterable`` connection).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, model_validator

from lytics_provider.jobs.api_import import ChangesImportJob
from lytics_provider.jobs.base import AudienceExportConfig
from lytics_provider.jobs.exit_guard import ExitGuardFields
from lytics_provider.jobs.fields import connection_field
from lytics_provider.jobs.sync_tasks import add_deliver_tasks

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext

_CONN = connection_field("iterable_default", "Iterable connection id (Iterable API Key).")
IterableStream = Literal["users", "activity", "in_app_activity", "push_activity", "sms_activity"]
ActivityStream = Literal["activity", "in_app_activity", "push_activity", "sms_activity"]


class IterableExportJob(ExitGuardFields, AudienceExportConfig):
    """Subscribe an audience to an Iterable list; members who leave are unsubscribed from it."""

    type: Literal["iterable_export"]
    iterable_conn_id: str = _CONN
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


class IterableImportJob(ChangesImportJob):
    """Import Audiences & Activity Data: users and email / in-app / push / SMS events, one Export API
    read per data type of the window since the last run."""

    type: Literal["iterable_import"]
    task_operator: ClassVar[str] = "lytics_provider.transfers.iterable_to_lytics.IterableToLyticsOperator"
    iterable_conn_id: str = _CONN
    streams: list[IterableStream] = Field(
        default_factory=lambda: ["users", "activity", "in_app_activity", "push_activity", "sms_activity"],
        min_length=1,
        description="Streams read: users (iterable_users), activity (email events, iterable_activity), "
        "in_app_activity, push_activity, sms_activity (iterable_<name>).",
    )
    event_types: dict[ActivityStream, list[str]] = Field(
        default_factory=dict,
        description="Export API data types (dataTypeName) an activity stream reads instead of its "
        "defaults, e.g. {activity: [emailOpen, emailClick]}.",
    )
    user_fields: list[str] | None = Field(
        default=None,
        min_length=1,
        description="User fields exported (onlyFields); default every field, custom fields included.",
    )
    page_size: int = Field(
        default=1000, ge=1, le=10_000, description="Records per page sent to Lytics (one checkpoint each)."
    )

    @model_validator(mode="after")
    def _event_types_named(self) -> IterableImportJob:
        empty = sorted(name for name, types in self.event_types.items() if not types)
        if empty:
            raise ValueError(f"event_types of {', '.join(empty)} is empty; list data types or drop the key")
        return self
