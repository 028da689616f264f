"""Keep Updated schedule fields -> an Airflow timetable, and the schedule in words.

Every recurring job gets a ``CronTriggerTimetable`` whose cron is read in the job's own
timezone, so "daily at 02:30 America/New_York" stays at 02:30 local time across DST.

How Airflow 3.3 handles the DST days (checked by ``tests/unit/test_schedule.py``):

* a local time that does not exist (02:30 on a spring-forward day) runs once, at the first
  valid moment after the gap (03:30 local);
* a local time that happens twice (01:30 on a fall-back day) runs once, on its second
  occurrence (01:30 standard time);
* hourly schedules follow elapsed time: the repeated hour of a fall-back day has two runs
  (01:00 daylight and 01:00 standard time), a spring-forward day has 23 runs;
* every-N-hours schedules run at local hours 0, N, 2N, ...: a slot inside the gap runs at
  the end of the gap, and no slot runs twice;
* every-N-minutes schedules (N >= 5 and dividing 60) run at minutes 0, N, 2N, ... of every hour
  and, like hourly ones, follow elapsed time across DST days.

Sub-hourly runs are micro-batches: each scans the audience, diffs with the last run and sends the
difference, so a member who enters and exits inside one interval is not seen, and the interval
cannot be shorter than the scan (a run that is still going when the next is due makes it wait).

A plain cron form therefore behaves on every DST day. The timetable is a ``CronTriggerTimetable``
subclass (``timetables/keep_updated.py``) only so the DAG list shows the schedule in words with its
timezone (``daily at 02:30 America/New_York``) instead of the bare cron.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lytics_provider.jobs.base import WEEKDAYS, ScheduleFields

if TYPE_CHECKING:
    from lytics_provider.timetables.keep_updated import KeepUpdatedTimetable

DEFAULT_TIME_OF_DAY = "00:00"
ONCE = "@once"

# Cron day-of-week numbers (0 = Sunday).
_CRON_WEEKDAY = {day: (index + 1) % 7 for index, day in enumerate(WEEKDAYS)}


def _hour_minute(cfg: ScheduleFields) -> tuple[int, int]:
    hour, minute = (cfg.time_of_day or DEFAULT_TIME_OF_DAY).split(":")
    return int(hour), int(minute)


def cron_expression(cfg: ScheduleFields) -> str | None:
    """The cron expression of a Keep Updated job, read in ``cfg.timezone``; None for a one-time job."""
    if not cfg.keep_updated:
        return None
    if cfg.every_minutes:
        return f"*/{cfg.every_minutes} * * * *"
    if cfg.is_sub_daily:
        every = cfg.every_hours
        return "0 * * * *" if every == 1 else f"0 */{every} * * *"
    hour, minute = _hour_minute(cfg)
    if cfg.frequency == "daily":
        return f"{minute} {hour} * * *"
    if cfg.frequency == "weekly":
        return f"{minute} {hour} * * {_CRON_WEEKDAY[cfg.day_of_week]}"
    if cfg.frequency == "monthly":
        return f"{minute} {hour} {cfg.day_of_month} * *"
    raise ValueError(f"unsupported frequency {cfg.frequency!r}")  # pragma: no cover - validated earlier


def build_timetable(cfg: ScheduleFields) -> KeepUpdatedTimetable | None:
    """A timezone-aware cron trigger timetable showing its schedule in words, or None for a one-time job."""
    cron = cron_expression(cfg)
    if cron is None:
        return None
    from lytics_provider.timetables.keep_updated import KeepUpdatedTimetable

    return KeepUpdatedTimetable(cron, timezone=cfg.timezone, words=describe_schedule(cfg))


def dag_schedule(cfg: ScheduleFields) -> KeepUpdatedTimetable | str:
    """The value for ``DAG(schedule=...)``: the timetable, or ``"@once"``."""
    return build_timetable(cfg) or ONCE


def describe_schedule(cfg: ScheduleFields) -> str:
    """The schedule in words, e.g. ``daily at 02:30 America/New_York``."""
    if not cfg.keep_updated:
        return "once"
    if cfg.is_sub_daily:
        return f"{cfg.frequency} ({cfg.timezone})"
    at = f"at {cfg.time_of_day or DEFAULT_TIME_OF_DAY} {cfg.timezone}"
    if cfg.frequency == "weekly":
        return f"weekly on {cfg.day_of_week.capitalize()} {at}"
    if cfg.frequency == "monthly":
        return f"monthly on day {cfg.day_of_month} {at}"
    return f"{cfg.frequency} {at}"
