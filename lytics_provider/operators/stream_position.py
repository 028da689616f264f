"""The committed stream position of an activity export: which events earlier runs delivered.

:class:`NewStreamEvents` is mixed into an operator that exports a Lytics stream's events: each run
copies the events after the job's committed position
(:func:`~lytics_provider.files.export_events.download_new_events`; the first run copies them all)
and commits the new position in the job state only after the destination acknowledged them, so a
failed delivery is sent again by the retry and a delivered event is never sent by a later run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import Context

from lytics_provider.files.export_events import EventsPosition, NewEvents, download_new_events
from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.pipeline.workarea import JobState, run_dir

EVENTS_POSITION_KEY = "events_position"


class NewStreamEvents:
    """Reads and commits the position of the job's stream; for activity export operators."""

    job_id: str
    stream: str
    lytics_conn_id: str

    def events_state(self) -> JobState:
        """The job state that keeps the committed position."""
        return JobState(self.job_id)

    def committed_position(self) -> EventsPosition | None:
        """Where the delivered events end, or ``None`` before the first delivery."""
        return EventsPosition.from_state(self.events_state().get(EVENTS_POSITION_KEY))

    def download_new(self, context: Context, after: EventsPosition | None) -> NewEvents:
        """The events after ``after`` as a JSON-lines file in the run folder.

        :param context: the task's context (names the run folder).
        :param after: the committed position (``None``: every event).
        """
        work = run_dir(self.job_id, context["run_id"])
        return download_new_events(LyticsHook(self.lytics_conn_id), self.stream, work, after)

    def commit_position(self, position: Mapping[str, Any], **more: Any) -> None:
        """Save ``position`` (an :meth:`EventsPosition.as_state` value) as delivered.

        :param position: the position of the last delivered event.
        :param more: other job state values saved in the same write.
        """
        self.events_state().update(**{EVENTS_POSITION_KEY: dict(position)}, **more)
