"""HubSpot job types: Export Audiences and Import Contacts and Activity.

The integration page names both jobs but its option lists were not captured; the options here
are the ones the documented behaviour needs ("keep your HubSpot email lists up to date with your
Lytics audiences; update and add properties"; a contacts / events selection for the import), with
the Lytics job forms' names where they exist (Keep Updated, Frequency, Time of Day, Timezone).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from lytics_provider.jobs.api_import import ChangesImportJob
from lytics_provider.jobs.base import AudienceExportConfig
from lytics_provider.jobs.exit_guard import ExitGuardFields
from lytics_provider.jobs.fields import connection_field
from lytics_provider.jobs.sync_tasks import add_deliver_tasks, field_roots

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext

_CONN = connection_field("hubspot_default", "HubSpot connection (private app token).")


class HubspotExportJob(ExitGuardFields, AudienceExportConfig):
    """Export Audiences: members upserted as HubSpot contacts and kept in a contact list."""

    type: Literal["hubspot_export"]
    hubspot_conn_id: str = _CONN
    list_name: str | None = Field(
        default=None, max_length=255, description='HubSpot contact list; default "Lytics " + audience name.'
    )
    create_list: bool = Field(
        default=True, description="Create a static (MANUAL) list of that name if none exists."
    )
    email_field: str = Field(
        default="email", min_length=1, description="Lytics field with the contact's email."
    )
    id_field: str | None = Field(
        default="hubspot_id",
        description="Lytics field with the HubSpot record id (hubspot_contacts imports it); saves a "
        "lookup on exit.",
    )
    property_map: dict[str, str] = Field(
        default_factory=lambda: {"first_name": "firstname", "last_name": "lastname"},
        description="Lytics field -> HubSpot contact property, written on enter and when a field changes. "
        "Subscription properties (hs_email_optout, ...) are refused.",
    )
    on_exit: Literal["remove", "ignore"] = Field(
        default="remove",
        description="On exit: remove from the list (only members this job added; the contact stays) "
        "or ignore.",
    )
    batch_size: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Members per acknowledged batch (upserts of 100, then one list call).",
    )

    def add_tasks(self, job: JobContext) -> None:
        """``scan`` -> ``deliver`` -> ``report``."""
        from lytics_provider.transfers.lytics_to_hubspot import LyticsToHubspotOperator

        fields = field_roots([self.email_field, self.id_field, *self.property_map, *(self.fields or [])])
        add_deliver_tasks(self, job, LyticsToHubspotOperator, fields, fields)


class HubspotImportJob(ChangesImportJob):
    """Import Contacts and Activity: contacts into ``hubspot_contacts``, email events into
    ``hubspot_activity``."""

    type: Literal["hubspot_import"]
    task_operator: ClassVar[str] = "lytics_provider.transfers.hubspot_to_lytics.HubspotToLyticsOperator"
    selection_fields: ClassVar[tuple[str, ...]] = ("import_contacts", "import_events")
    hubspot_conn_id: str = _CONN
    import_contacts: bool = Field(default=True, description="Import contacts (into hubspot_contacts).")
    import_events: bool = Field(default=True, description="Import email events (into hubspot_activity).")
    contact_properties: list[str] = Field(
        default_factory=lambda: [
            "email",
            "firstname",
            "lastname",
            "phone",
            "company",
            "jobtitle",
            "city",
            "state",
            "country",
            "lifecyclestage",
            "hs_lead_status",
            "createdate",
            "lastmodifieddate",
        ],
        min_length=1,
        description="HubSpot contact properties to read.",
    )
