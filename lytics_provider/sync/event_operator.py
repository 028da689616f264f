"""The ``deliver`` operator of every event destination: the kit's sync run plus the event options.

A receiver of audience events (a webhook, a topic, a stream, a queue, an analytics API)
subclasses :class:`AudienceEventOperator` and builds its
:class:`~lytics_provider.sync.events.EventDestination` in ``make_destination`` with
``**self.event_arguments(inputs)``: job and run (the event ids), the audience, "Audience Trigger
Events", "Fields to Trigger", "Existing Users", "Export Fields" and the batch size. The argument
names are the job config's option names, so a config reaches the operator by
:func:`~lytics_provider.jobs.operator_args.operator_kwargs` alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import Context

from lytics_provider.hooks.permanent_errors import FailFastOnPermanentErrors
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.sync.operator import AudienceSyncOperator, SyncRunInputs


class AudienceEventOperator(AudienceSyncOperator):
    """Scan XCom -> plan -> exit guard -> events in checkpointed batches -> rejects -> report.

    :param audience_trigger_events: "Audience Trigger Events": the kinds sent (``enter``, ``exit``,
        ``change``).
    :param fields_to_trigger: "Fields to Trigger": a change event only when one of these moved
        (None: any field).
    :param export_fields: "Export Fields": the fields each event carries (None: every scanned field).
    :param existing_users: "Existing Users": the first run sends an enter for every member already
        in the audience; off, it only records them.
    :param batch_size: events per batch (one checkpoint each); None: :attr:`default_batch_size`.
    :param kwargs: :class:`~lytics_provider.sync.operator.AudienceSyncOperator`'s arguments.
    """

    #: events per batch when ``batch_size`` is not given (None: the destination's own default)
    default_batch_size: int | None = 100
    #: the most events per batch the receiver takes in one call (None: no limit)
    max_batch_size: int | None = None

    def __init__(
        self,
        *,
        audience_trigger_events: Sequence[str] = ("enter", "exit"),
        fields_to_trigger: Sequence[str] | None = None,
        export_fields: Sequence[str] | None = None,
        existing_users: bool = True,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        self.audience_trigger_events = list(audience_trigger_events)
        self.fields_to_trigger = list(fields_to_trigger) if fields_to_trigger else None
        self.export_fields = list(export_fields) if export_fields else None
        self.batch_size = self.default_batch_size if batch_size is None else batch_size
        if self.batch_size is not None and not 1 <= self.batch_size <= (
            self.max_batch_size or self.batch_size
        ):
            bound = f" to {self.max_batch_size}" if self.max_batch_size else " or more"
            raise self.config_error(f"batch_size {self.batch_size!r} must be 1{bound}")

    def audience_slug(self, inputs: SyncRunInputs) -> str:
        """The audience the events name (the scan's slug)."""
        audience = inputs.audience
        named = audience.get("slug") or audience.get("name") or audience.get("id")
        return str(named or inputs.params.get("audience") or "")

    def audience_name(self, inputs: SyncRunInputs) -> str:
        return str(inputs.audience.get("name") or self.audience_slug(inputs))

    def event_kinds(self) -> list[str]:
        """The kinds sent (the Audience Trigger Events)."""
        return self.audience_trigger_events

    def event_arguments(self, inputs: SyncRunInputs) -> dict[str, Any]:
        """The :class:`~lytics_provider.sync.events.EventDestination` arguments of this run."""
        arguments: dict[str, Any] = {
            "job_id": self.job_id,
            "run_id": inputs.run_id,
            "audience": self.audience_slug(inputs),
            "events": self.event_kinds(),
            "trigger_fields": self.fields_to_trigger,
            "export_fields": self.export_fields,
            "existing_users": self.existing_users,
            "first_run": inputs.previous is None,
        }
        if self.batch_size is not None:
            arguments["batch_size"] = self.batch_size
        return arguments


class FailFastEventOperator(FailFastOnPermanentErrors, AudienceEventOperator):
    """An :class:`AudienceEventOperator` whose errors no retry fixes (a topic, stream or queue that
    does not exist, refused credentials) fail the task at once."""

    def execute(self, context: Context) -> dict[str, Any]:
        return super().execute(context)
