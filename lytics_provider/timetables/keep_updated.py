"""The Keep Updated timetable: a cron trigger in the job's timezone that shows its schedule in words.

Airflow's DAG list shows a timetable's ``summary`` in the Schedule column and its ``description``
as the column's tooltip; a plain ``CronTriggerTimetable`` shows only the bare cron (``30 2 * * *``),
without the timezone it is read in. This subclass keeps the cron trigger's behaviour (DST days
included, see ``jobs/schedule.py``) and carries the words, e.g. ``daily at 02:30 America/New_York``.

A custom timetable is a core ``airflow.timetables`` class registered by a plugin, so the scheduler
can decode it from the serialized DAG: ``lytics_provider.plugin.LyticsPlugin`` lists it, and the
package's ``airflow.plugins`` entry point loads that plugin.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from airflow.timetables.trigger import CronTriggerTimetable

if TYPE_CHECKING:
    from pendulum.tz.timezone import FixedTimezone, Timezone


class KeepUpdatedTimetable(CronTriggerTimetable):
    """A ``CronTriggerTimetable`` whose summary is the Keep Updated schedule in words.

    :param cron: the cron expression, read in ``timezone``.
    :param timezone: the IANA timezone of the job's Time of Day.
    :param words: the schedule in words (``describe_schedule``), shown as the DAG's schedule.
    """

    def __init__(
        self,
        cron: str,
        *,
        timezone: str | Timezone | FixedTimezone,
        words: str,
        interval: datetime.timedelta = datetime.timedelta(),
        run_immediately: bool | datetime.timedelta = False,
    ) -> None:
        super().__init__(cron, timezone=timezone, interval=interval, run_immediately=run_immediately)
        self.words = words
        cron_words = self.description.rstrip(".") if self.description else "runs"
        self.description = f"{cron_words}, {self._timezone.name} time (cron '{self._expression}')"

    @property
    def summary(self) -> str:
        """The schedule in words, e.g. ``daily at 02:30 America/New_York``."""
        return self.words

    def serialize(self) -> dict[str, Any]:
        return {**super().serialize(), "words": self.words}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> KeepUpdatedTimetable:
        base = CronTriggerTimetable.deserialize(data)
        assert isinstance(base, CronTriggerTimetable)
        return cls(
            base._expression,
            timezone=base._timezone,
            words=data["words"],
            interval=base._interval,
            run_immediately=base._run_immediately,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeepUpdatedTimetable):
            return NotImplemented
        return super().__eq__(other) is True and self.words == other.words

    def __hash__(self) -> int:
        return hash((self._expression, self._timezone, self.words))
