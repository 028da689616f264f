"""Brevo job types: Export Users (the seed's **List**, **Email** field and field mapping; the
advanced defaults "continuously import" and "add users who already exist in the selected segment"
are Keep Updated and the first run sending every member) and Import Users & Activity (the seed's
List(s); activity synced by default; Time of Day and Timezone are the schedule's)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from lytics_provider.jobs.api_import import ChangesImportJob
from lytics_provider.jobs.exit_guard import ExitGuardFields
from lytics_provider.jobs.fields import connection_field
from lytics_provider.jobs.mapped_export import MappedFieldsExport

_CONN = connection_field("brevo_default", "Brevo connection (API key).")


class BrevoExportJob(ExitGuardFields, MappedFieldsExport):
    """Export Users: an audience's members imported as contacts of a Brevo list."""

    type: Literal["brevo_export"]
    deliver_operator: ClassVar[str] = "lytics_provider.transfers.lytics_to_brevo.LyticsToBrevoOperator"
    key_field_option: ClassVar[str] = "email_field"
    mapping_option: ClassVar[str] = "field_mapping"
    keep_updated: bool = Field(default=True, description="Continuously import (the seed's default).")
    brevo_conn_id: str = _CONN
    list: str = Field(min_length=1, description="List: the Brevo list id or exact name.")
    email_field: str = Field(
        default="email", min_length=1, description="Email: the Lytics field with the email."
    )
    field_mapping: dict[str, str] = Field(
        default_factory=lambda: {"first_name": "FIRSTNAME", "last_name": "LASTNAME"},
        description="Lytics field -> Brevo attribute, written on enter and on change (empty values never "
        "blank an attribute).",
    )
    on_exit: Literal["remove", "ignore"] = Field(
        default="remove",
        description="On exit: remove from the list (only contacts this job added; the contact stays) "
        "or ignore.",
    )
    batch_size: int = Field(
        default=1000, ge=1, le=5000, description="Contacts per import call (at most 5,000)."
    )


class BrevoImportJob(ChangesImportJob):
    """Import Users & Activity: contacts of lists into ``brevo_users``, transactional email events
    into ``brevo_activity`` and transactional SMS events into ``brevo_sms_activity``."""

    type: Literal["brevo_import"]
    task_operator: ClassVar[str] = "lytics_provider.transfers.brevo_to_lytics.BrevoToLyticsOperator"
    brevo_conn_id: str = _CONN
    lists: list[str] = Field(
        min_length=1,
        description="List(s): the Brevo lists (ids or exact names) whose contacts are imported into "
        "brevo_users.",
    )
    import_activity: bool = Field(
        default=True, description="Import transactional email events (into brevo_activity)."
    )
    import_sms_activity: bool = Field(
        default=True, description="Import transactional SMS events (into brevo_sms_activity)."
    )
