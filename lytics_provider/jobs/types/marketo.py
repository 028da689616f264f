"""Marketo job type: Export Audiences ("Any Lytics field can be exported to Marketo Lead Fields").

The seed's export page lists no other option; the static list, the email field and the exit
behaviour are what "keep a Marketo list in step with an audience" needs.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from lytics_provider.jobs.exit_guard import ExitGuardFields
from lytics_provider.jobs.fields import connection_field
from lytics_provider.jobs.mapped_export import MappedFieldsExport


class MarketoExportJob(ExitGuardFields, MappedFieldsExport):
    """Export Audiences: members created or updated as Marketo leads and kept in a static list."""

    type: Literal["marketo_export"]
    deliver_operator: ClassVar[str] = "lytics_provider.transfers.lytics_to_marketo.LyticsToMarketoOperator"
    key_field_option: ClassVar[str] = "email_field"
    mapping_option: ClassVar[str] = "lead_fields"
    marketo_conn_id: str = connection_field("marketo_default", "Marketo connection (API user).")
    static_list: str = Field(min_length=1, description="Marketo static list id or exact name.")
    email_field: str = Field(default="email", min_length=1, description="Lytics field with the lead's email.")
    lead_fields: dict[str, str] = Field(
        default_factory=lambda: {"first_name": "firstName", "last_name": "lastName"},
        description="Lytics field -> Marketo Lead Field (REST API name), written on enter and on change.",
    )
    on_exit: Literal["remove", "ignore"] = Field(
        default="remove",
        description="On exit: remove from the static list (only leads this job added; the lead stays) "
        "or ignore.",
    )
    batch_size: int = Field(default=300, ge=1, le=300, description="Leads per batch (at most 300 per call).")
