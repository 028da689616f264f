"""The ``deliver`` task of an audience-events job: the standard sync run with an event destination.

A receiver of events (a stream, a queue) subclasses :class:`AudienceEventsOperator` and implements
:meth:`~AudienceEventsOperator.event_destination`, given the options every event job shares
("Audience Trigger Events", "Fields to Trigger", "Export Fields", "Existing Users"). Errors no
retry fixes (a stream or queue that does not exist, refused credentials) fail the task at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import Context

from lytics_provider.hooks.permanent_errors import FailFastOnPermanentErrors
from lytics_provider.sync.events import EventDestination
from lytics_provider.sync.operator import AudienceSyncOperator, SyncRunInputs


class AudienceEventsOperator(FailFastOnPermanentErrors, AudienceSyncOperator):
    """Send the run's enter / exit / change events through :meth:`event_destination`.

    :param events: "Audience Trigger Events": the kinds sent (``enter``, ``exit``, ``change``).
    :param trigger_fields: "Fields to Trigger": a change event only when one of these moved
        (None: any field).
    :param export_fields: "Export Fields": the fields each event carries (None: every field).
    :param existing_users: "Existing Users": the first run sends an enter for every member already
        in the audience; off, it only records them.
    :param batch_size: events per checkpoint (default: the receiver's most per call, so each
        acknowledged call is checkpointed).
    """

    def __init__(
        self,
        *,
        events: Sequence[str] = ("enter", "exit"),
        trigger_fields: Sequence[str] | None = None,
        export_fields: Sequence[str] | None = None,
        existing_users: bool = True,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.events = list(events)
        self.trigger_fields = list(trigger_fields) if trigger_fields else None
        self.export_fields = list(export_fields) if export_fields else None
        self.existing_users = existing_users
        self.batch_size = batch_size

    def event_options(self, inputs: SyncRunInputs) -> dict[str, Any]:
        """The :class:`EventDestination` arguments this run shares with every event receiver."""
        options: dict[str, Any] = {
            "job_id": self.job_id,
            "run_id": inputs.run_id,
            "audience": str(inputs.audience.get("slug") or inputs.audience.get("id") or ""),
            "events": self.events,
            "trigger_fields": self.trigger_fields,
            "export_fields": self.export_fields,
            "existing_users": self.existing_users,
            "first_run": inputs.previous is None,
        }
        if self.batch_size:
            options["batch_size"] = self.batch_size
        return options

    def event_destination(self, options: dict[str, Any], inputs: SyncRunInputs) -> EventDestination:
        """The receiver's adapter, built with ``options`` (:meth:`event_options`)."""
        raise NotImplementedError

    def make_destination(self, inputs: SyncRunInputs) -> EventDestination:
        return self.event_destination(self.event_options(inputs), inputs)

    def execute(self, context: Context) -> dict[str, Any]:
        return self.run_sync(self.sync_inputs(context))
