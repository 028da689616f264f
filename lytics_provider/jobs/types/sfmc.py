"""Salesforce Marketing Cloud job types: Export Audience To Existing / New Data Extension, Export Lists,
Trigger Journey, Import Subscriber and Activity.

The seed names the options it captured: the Marketing Cloud **subscriber key** chosen from the
Lytics fields ("usually email or the Marketing Cloud subscriber key"), the Lytics fields mapped to
data extension fields (no default fields), and for Trigger Journey the required **ContactKey** and
**EventDefinitionKey** plus mapped journey data fields, sent when a member **enters**; "Existing
Users" is the real-time exports' backfill option. Export Lists packages each member as a Marketing
Cloud **Subscriber** ("Ensure the user has an email field"; mapped fields become subscriber
attributes) added to the list with a SOAP "CREATE" on enter; on exit it does "one of the
following", options the seed did not capture: here ``on_exit`` chooses ``remove`` (from the list),
``unsubscribe`` (from the list alone) or ``ignore``. Import Subscriber and Activity selects
**Subscribers** and/or **Activity** (the streams ``sfmc_subscribers`` and ``sfmc_events``); its
advanced options were not captured.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from lytics_provider.jobs.api_import import ChangesImportJob
from lytics_provider.jobs.fields import connection_field
from lytics_provider.jobs.mapped_export import MappedFieldsExport

_CONN = connection_field("sfmc_default", "Marketing Cloud connection (installed package).")


class _SfmcSubscriberExport(MappedFieldsExport):
    """Members keyed by ``subscriber_key_field``, carrying ``field_mapping``, over an ``sfmc`` connection."""

    key_field_option: ClassVar[str] = "subscriber_key_field"
    mapping_option: ClassVar[str] = "field_mapping"

    sfmc_conn_id: str = _CONN


class _SfmcDataExtensionExport(_SfmcSubscriberExport):
    deliver_operator: ClassVar[str] = (
        "lytics_provider.transfers.lytics_to_sfmc.LyticsToSfmcDataExtensionOperator"
    )
    data_extension_key: str = Field(
        min_length=1, max_length=200, description="External key (CustomerKey) of the data extension."
    )
    subscriber_key_field: str = Field(
        default="email",
        min_length=1,
        description="Lytics field used as the Marketing Cloud subscriber key (usually email or the "
        "Marketing Cloud subscriber key).",
    )
    subscriber_key_column: str = Field(
        default="SubscriberKey",
        min_length=1,
        description="Primary key column of the data extension that holds the subscriber key.",
    )
    field_mapping: dict[str, str] = Field(
        default_factory=dict,
        description="Lytics field -> data extension field, written on enter and when a mapped field changes "
        "(no default fields).",
    )
    batch_size: int = Field(default=50, ge=1, le=50, description="Rows per rowset upsert call (at most 50).")

    def deliver_arguments(self) -> dict[str, Any]:
        """The new data extension job type creates it first."""
        return {"create_data_extension": self.type == "sfmc_export_new_data_extension"}


class SfmcExportDataExtensionJob(_SfmcDataExtensionExport):
    """Export Audience To Existing Data Extension: members upserted as rows of a data extension."""

    type: Literal["sfmc_export_data_extension"]


class SfmcExportNewDataExtensionJob(_SfmcDataExtensionExport):
    """Export Audience To New Data Extension: the data extension is created, then filled the same way."""

    type: Literal["sfmc_export_new_data_extension"]
    data_extension_name: str | None = Field(
        default=None, max_length=200, description="Name of the new data extension; default its key."
    )
    column_types: dict[str, str] = Field(
        default_factory=dict,
        description="Marketing Cloud FieldType of new columns by column name (Text, Number, Date, Boolean, "
        "EmailAddress, Phone, Decimal, Locale); default Text, and EmailAddress for an email subscriber key.",
    )


class SfmcTriggerJourneyJob(MappedFieldsExport):
    """Trigger Journey: each member who enters the audience is sent into a journey as an entry event."""

    type: Literal["sfmc_trigger_journey"]
    deliver_operator: ClassVar[str] = "lytics_provider.transfers.lytics_to_sfmc.SfmcTriggerJourneyOperator"
    key_field_option: ClassVar[str] = "contact_key_field"
    mapping_option: ClassVar[str] = "field_mapping"
    sfmc_conn_id: str = _CONN
    event_definition_key: str = Field(
        min_length=1, description="EventDefinitionKey of the journey's API event entry source."
    )
    contact_key_field: str = Field(
        default="email", min_length=1, description="Lytics field sent as the ContactKey."
    )
    field_mapping: dict[str, str] = Field(
        default_factory=dict, description="Lytics field -> journey data field (the event's Data)."
    )
    existing_users: bool = Field(
        default=True,
        description="Existing Users: the first run sends every member already in the audience into the "
        "journey; false records the audience and sends only members who enter later.",
    )

    @model_validator(mode="after")
    def _key_not_mapped(self) -> SfmcTriggerJourneyJob:
        if "ContactKey" in self.field_mapping.values():
            raise ValueError("field_mapping writes ContactKey; it comes from contact_key_field, remove it")
        return self


class SfmcExportListsJob(_SfmcSubscriberExport):
    """Export Lists: members kept as subscribers on a Marketing Cloud list (SOAP)."""

    type: Literal["sfmc_export_lists"]
    deliver_operator: ClassVar[str] = (
        "lytics_provider.transfers.lytics_to_sfmc_lists.LyticsToSfmcListOperator"
    )
    list_id: str = Field(
        min_length=1,
        description="ID of the Marketing Cloud list, digits only (Email Studio > Subscribers > Lists, the "
        "list's properties).",
    )
    subscriber_key_field: str = Field(
        default="email", min_length=1, description="Lytics field used as the subscriber's SubscriberKey."
    )
    email_field: str = Field(
        default="email", min_length=1, description="Lytics field holding the subscriber's EmailAddress."
    )
    field_mapping: dict[str, str] = Field(
        default_factory=dict,
        description="Lytics field -> subscriber attribute (the attribute must exist in Marketing Cloud), "
        "written on enter and when a mapped field changes.",
    )
    on_exit: Literal["remove", "unsubscribe", "ignore"] = Field(
        default="remove",
        description="What a member who leaves the audience gets (only members this job added): remove "
        "(taken off the list), unsubscribe (left on the list as Unsubscribed from it alone) or ignore.",
    )
    batch_size: int = Field(default=100, ge=1, le=100, description="Subscribers per SOAP call (at most 100).")

    @field_validator("list_id", mode="before")
    @classmethod
    def _numeric_list_id(cls, value: Any) -> str:
        value = str(value).strip()
        if not value.isdigit():
            raise ValueError(
                f"{value!r} is not a list ID; use the list's numeric ID (Email Studio > Subscribers > Lists, "
                "the list's properties), not its name"
            )
        return value

    def key_fields(self) -> list[str]:
        """The subscriber key, then the email."""
        return list(dict.fromkeys([self.subscriber_key_field, self.email_field]))


TrackingEvent = Literal[
    "SentEvent", "OpenEvent", "ClickEvent", "BounceEvent", "UnsubEvent", "ForwardedEmailEvent",
    "ForwardedEmailOptInEvent", "SurveyEvent",
]  # fmt: skip


class SfmcImportJob(ChangesImportJob):
    """Import Subscriber and Activity: subscribers into ``sfmc_subscribers``, tracking events into
    ``sfmc_events``."""

    type: Literal["sfmc_import"]
    task_operator: ClassVar[str] = "lytics_provider.transfers.sfmc_to_lytics.SfmcToLyticsOperator"
    selection_fields: ClassVar[tuple[str, ...]] = ("import_subscribers", "import_activity")
    sfmc_conn_id: str = _CONN
    import_subscribers: bool = Field(
        default=True, description="Import subscribers created or unsubscribed (into sfmc_subscribers)."
    )
    import_activity: bool = Field(default=True, description="Import tracking events (into sfmc_events).")
    event_types: list[TrackingEvent] = Field(
        default_factory=lambda: ["SentEvent", "OpenEvent", "ClickEvent", "BounceEvent", "UnsubEvent"],
        min_length=1,
        description="Tracking event objects read with SOAP Retrieve.",
    )
