"""Export Audiences (Event Hub): audience enter / exit / change events to an Azure event hub."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lytics_provider.hooks.azure_event_hub import AzureEventHubHook, EventHubEventDestination
from lytics_provider.sync.operator import AudienceSyncOperator, SyncRunInputs

DEFAULT_BATCH_SIZE = 100


class AzureEventHubExportOperator(AudienceSyncOperator):
    """Send the run's audience events to an event hub, one batch per Send batch events call.

    Each event's ``Body`` is the JSON event document (``sync.event_body``) and its
    ``UserProperties`` carry ``event_id``, the same id on a retried batch.

    :param azure_event_hub_conn_id: the ``azure_event_hub`` connection (Event Hub Connection String).
    :param event_hub: the event hub; default the connection string's ``EntityPath``.
    :param events: "Audience Trigger Events": the kinds sent (``enter``, ``exit``, ``change``).
    :param trigger_fields: "Fields to Trigger": a change event only when one of them moved.
    :param export_fields: fields each event carries; default every scanned field.
    :param existing_users: "Existing Users": send members already in the audience on the first run.
    :param batch_size: events per batch (each batch is also kept within 1 MB).
    """

    template_fields = ("event_hub",)

    def __init__(
        self,
        *,
        azure_event_hub_conn_id: str = AzureEventHubHook.default_conn_name,
        event_hub: str | None = None,
        events: Sequence[str] = ("enter", "exit"),
        trigger_fields: Sequence[str] | None = None,
        export_fields: Sequence[str] | None = None,
        existing_users: bool = True,
        batch_size: int = DEFAULT_BATCH_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if batch_size < 1:
            raise ValueError(f"batch_size {batch_size!r} must be 1 or more")
        self.azure_event_hub_conn_id = azure_event_hub_conn_id
        self.event_hub = event_hub
        self.events = list(events)
        self.trigger_fields = list(trigger_fields) if trigger_fields else None
        self.export_fields = list(export_fields) if export_fields else None
        self.existing_users = existing_users
        self.batch_size = batch_size

    def make_destination(self, inputs: SyncRunInputs) -> EventHubEventDestination:
        hook = AzureEventHubHook(self.azure_event_hub_conn_id)
        hub = hook.event_hub(self.event_hub)
        return EventHubEventDestination(
            hook,
            hub,
            job_id=self.job_id,
            run_id=inputs.run_id,
            audience=str(inputs.audience.get("slug") or inputs.audience.get("id") or ""),
            events=self.events,
            trigger_fields=self.trigger_fields,
            export_fields=self.export_fields,
            existing_users=self.existing_users,
            first_run=inputs.previous is None,
            batch_size=self.batch_size,
        )
