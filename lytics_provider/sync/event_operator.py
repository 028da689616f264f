"""The delivery operator of event destinations: the kit's standard sync run plus the event options.

A destination that turns audience changes into events (:mod:`lytics_provider.sync.events`)
subclasses :class:`AudienceEventOperator` and builds its adapter in ``make_destination`` with
``**self.event_arguments(inputs)``: job and run (the event ids), the audience, "Audience Trigger
Events", "Fields to Trigger", "Existing Users", the export fields and the batch size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lytics_provider.sync.operator import AudienceSyncOperator, SyncRunInputs


class AudienceEventOperator(AudienceSyncOperator):
    """Scan XCom -> plan -> exit guard -> events in checkpointed batches -> rejects -> report.

    :param events: the kinds sent ("Audience Trigger Events": ``enter``, ``exit``, ``change``).
    :param trigger_fields: "Fields to Trigger"; None sends a change event for any field.
    :param export_fields: fields each event carries; None carries every scanned field.
    :param existing_users: on the first run, send an enter event for every member already in.
    :param batch_size: events per batch (one checkpoint each).
    :param kwargs: :class:`~lytics_provider.sync.operator.AudienceSyncOperator`'s arguments.
    """

    def __init__(
        self,
        *,
        events: Sequence[str] = ("enter", "exit"),
        trigger_fields: Sequence[str] | None = None,
        export_fields: Sequence[str] | None = None,
        existing_users: bool = True,
        batch_size: int = 100,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if batch_size < 1:
            raise self.config_error(f"batch_size {batch_size!r} must be 1 or more")
        self.events = list(events)
        self.trigger_fields = list(trigger_fields) if trigger_fields else None
        self.export_fields = list(export_fields) if export_fields else None
        self.existing_users = existing_users
        self.batch_size = batch_size

    def audience_slug(self, inputs: SyncRunInputs) -> str:
        return str(inputs.audience.get("slug") or inputs.audience.get("name") or "")

    def audience_name(self, inputs: SyncRunInputs) -> str:
        return str(inputs.audience.get("name") or self.audience_slug(inputs))

    def event_arguments(self, inputs: SyncRunInputs) -> dict[str, Any]:
        """The :class:`~lytics_provider.sync.events.EventDestination` arguments of this run."""
        return {
            "job_id": self.job_id,
            "run_id": inputs.run_id,
            "audience": self.audience_slug(inputs),
            "events": self.events,
            "trigger_fields": self.trigger_fields,
            "export_fields": self.export_fields,
            "existing_users": self.existing_users,
            "first_run": inputs.previous is None,
            "batch_size": self.batch_size,
        }
