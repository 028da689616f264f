"""Microsoft Azure job type: Export Audiences (Event Hub)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from lytics_provider.jobs.event_fields import BatchedEventFields
from lytics_provider.jobs.fields import connection_field

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext


class AzureEventHubExportJob(BatchedEventFields):
    """Export Audiences (Event Hub): enter / exit events of an audience to an Azure event hub."""

    type: Literal["azure_event_hub_export"]
    azure_event_hub_conn_id: str = connection_field(
        "azure_event_hub_default", "Azure Event Hub connection (the Event Hub Connection String)."
    )
    event_hub: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$",
        description="Event hub name; default the connection string's EntityPath.",
    )

    def add_tasks(self, job: JobContext) -> None:
        """``scan`` -> ``deliver`` -> ``report``."""
        from lytics_provider.operators.azure_event_hub import AzureEventHubExportOperator

        self.add_event_tasks(job, AzureEventHubExportOperator)
