"""Marketo job types: Export Audiences ("Any Lytics field can be exported to Marketo Lead Fields")
and Import Audiences & Activity Data (streams ``mo_user`` and ``mo_activity``).

The seed's export page lists no other option; the static list, the email field and the exit
behaviour are what "keep a Marketo list in step with an audience" needs. The import uses the Bulk
API ("500 MB per day" by default) and queries leads by ``updatedAt`` (preferred) or ``createdAt``
(where ``updatedAt`` is not available: updates to existing leads then do not reach Lytics).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from lytics_provider.jobs.api_import import ChangesImportJob
from lytics_provider.jobs.exit_guard import ExitGuardFields
from lytics_provider.jobs.fields import connection_field
from lytics_provider.jobs.mapped_export import MappedFieldsExport

_CONN = connection_field("marketo_default", "Marketo connection (API user).")


class MarketoExportJob(ExitGuardFields, MappedFieldsExport):
    """Export Audiences: members created or updated as Marketo leads and kept in a static list."""

    type: Literal["marketo_export"]
    deliver_operator: ClassVar[str] = "lytics_provider.transfers.lytics_to_marketo.LyticsToMarketoOperator"
    key_field_option: ClassVar[str] = "email_field"
    mapping_option: ClassVar[str] = "lead_fields"
    marketo_conn_id: str = _CONN
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


class MarketoImportJob(ChangesImportJob):
    """Import Audiences & Activity Data: leads into ``mo_user``, activities into ``mo_activity``,
    through Bulk Extract jobs of at most 31 days each over the window since the last run."""

    type: Literal["marketo_import"]
    task_operator: ClassVar[str] = "lytics_provider.transfers.marketo_to_lytics.MarketoToLyticsOperator"
    selection_fields: ClassVar[tuple[str, ...]] = ("import_leads", "import_activities")
    marketo_conn_id: str = _CONN
    import_leads: bool = Field(default=True, description="Import leads (into mo_user).")
    import_activities: bool = Field(default=True, description="Import activities (into mo_activity).")
    lead_filter: Literal["updatedAt", "createdAt"] = Field(
        default="updatedAt",
        description="Lead filter field: updatedAt (preferred; not available in every Marketo account) or "
        "createdAt (updates to existing leads are then not imported).",
    )
    lead_fields: list[str] = Field(
        default_factory=lambda: [
            "id", "email", "firstName", "lastName", "company", "title", "createdAt", "updatedAt",
        ],
        min_length=1,
        description="Lead fields extracted (REST API names).",
    )  # fmt: skip
    activity_type_ids: list[int] | None = Field(
        default=None, min_length=1, description="Activity type ids extracted (default every type)."
    )
    page_size: int = Field(
        default=1000, ge=1, le=10_000, description="Rows per page sent to Lytics (one checkpoint each)."
    )
    poll_interval: float = Field(
        default=30.0, gt=0, description="Seconds between reads of a Bulk Extract job's status."
    )
    export_timeout: float = Field(
        default=21_600.0, gt=0, description="Longest wait for one Bulk Extract job, in seconds."
    )
