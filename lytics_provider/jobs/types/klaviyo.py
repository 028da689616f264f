"""Klaviyo job types: Export Audiences and Import Users & Activity.

The integration page names both jobs and their behaviour ("send users to a list in Klaviyo";
"larger audiences may take a few days to be completely added to a list due to Klaviyo API
limitations"; the ``klaviyo_users`` and ``klaviyo_activity`` streams) but its option lists were
not captured; the options here are the ones that behaviour needs.
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

_CONN = connection_field("klaviyo_default", "Klaviyo connection (private API key).")


class KlaviyoExportJob(ExitGuardFields, AudienceExportConfig):
    """Export Audiences: members imported as Klaviyo profiles into a list, in bulk import jobs."""

    type: Literal["klaviyo_export"]
    klaviyo_conn_id: str = _CONN
    list_name: str | None = Field(
        default=None, max_length=255, description='Klaviyo list; default "Lytics " + audience name.'
    )
    create_list: bool = Field(default=True, description="Create the list if none of that name exists.")
    email_field: str = Field(
        default="email", min_length=1, description="Lytics field with the profile's email."
    )
    id_field: str | None = Field(
        default="klaviyo_id",
        description="Lytics field with the Klaviyo profile id (klaviyo_users imports it); saves a lookup "
        "on exit.",
    )
    property_map: dict[str, str] = Field(
        default_factory=lambda: {"first_name": "first_name", "last_name": "last_name"},
        description="Lytics field -> Klaviyo profile attribute (first_name, phone_number, ...) or "
        "properties.<name> for a custom property. Consent is refused.",
    )
    on_exit: Literal["remove", "ignore"] = Field(
        default="remove",
        description="On exit: remove from the list (only members this job added; never unsubscribes) "
        "or ignore.",
    )
    batch_size: int = Field(
        default=10_000, ge=1, le=10_000, description="Members per acknowledged batch (one bulk import job)."
    )
    poll_interval: float = Field(
        default=10.0, ge=0, description="Seconds between two reads of a job's status."
    )

    def add_tasks(self, job: JobContext) -> None:
        """``scan`` -> ``deliver`` -> ``report``."""
        from lytics_provider.transfers.lytics_to_klaviyo import LyticsToKlaviyoOperator

        fields = field_roots([self.email_field, self.id_field, *self.property_map, *(self.fields or [])])
        add_deliver_tasks(self, job, LyticsToKlaviyoOperator, fields, fields)


class KlaviyoImportJob(ChangesImportJob):
    """Import Users & Activity: profiles into ``klaviyo_users``, events into ``klaviyo_activity``."""

    type: Literal["klaviyo_import"]
    task_operator: ClassVar[str] = "lytics_provider.transfers.klaviyo_to_lytics.KlaviyoToLyticsOperator"
    selection_fields: ClassVar[tuple[str, ...]] = ("import_users", "import_activity")
    klaviyo_conn_id: str = _CONN
    import_users: bool = Field(default=True, description="Import profiles (into klaviyo_users).")
    import_activity: bool = Field(default=True, description="Import events (into klaviyo_activity).")
