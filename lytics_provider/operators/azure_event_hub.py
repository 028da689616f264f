"""Export Audiences (Event Hub): audience enter / exit / change events to an Azure event hub."""

from __future__ import annotations

from typing import Any

from lytics_provider.hooks.azure_event_hub import AzureEventHubHook, EventHubEventDestination
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.sync.event_operator import AudienceEventOperator
from lytics_provider.sync.operator import SyncRunInputs


class AzureEventHubExportOperator(AudienceEventOperator):
    """Send the run's audience events to an event hub, one batch per Send batch events call.

    Each event's ``Body`` is the JSON event document (``sync.event_body``) and its
    ``UserProperties`` carry ``event_id``, the same id on a retried batch; each batch is also kept
    within 1 MB.

    :param azure_event_hub_conn_id: the ``azure_event_hub`` connection (Event Hub Connection String).
    :param event_hub: the event hub; default the connection string's ``EntityPath``.
    :param kwargs: :class:`~lytics_provider.sync.event_operator.AudienceEventOperator`'s arguments.
    """

    template_fields = ("event_hub",)

    def __init__(
        self,
        *,
        azure_event_hub_conn_id: str = AzureEventHubHook.default_conn_name,
        event_hub: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())

    def make_destination(self, inputs: SyncRunInputs) -> EventHubEventDestination:
        hook = AzureEventHubHook(self.azure_event_hub_conn_id)
        return EventHubEventDestination(hook, hook.event_hub(self.event_hub), **self.event_arguments(inputs))
