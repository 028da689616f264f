"""Keep Updated fields -> timetables: each frequency, and the DST days neither skip nor double a run."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import timedelta

import pendulum
import pytest
from airflow.serialization.decoders import decode_timetable
from airflow.serialization.encoders import encode_timetable
from airflow.timetables.base import DataInterval, TimeRestriction

from lytics_provider.jobs.base import ScheduleFields
from lytics_provider.jobs.schedule import (
    build_timetable,
    cron_expression,
    dag_schedule,
    describe_schedule,
)

NEW_YORK = "America/New_York"


def schedule(**fields) -> ScheduleFields:
    return ScheduleFields(keep_updated=True, **fields)


def scheduler_timetable(cfg: ScheduleFields):
    """The timetable as the scheduler sees it: serialized with the DAG, then decoded."""
    return decode_timetable(encode_timetable(build_timetable(cfg)))


def runs(cfg: ScheduleFields, start: str, end: str) -> list[pendulum.DateTime]:
    """Every run between two local times, by iterating next_dagrun_info (catchup on), in local time."""
    timetable = scheduler_timetable(cfg)
    restriction = TimeRestriction(
        earliest=pendulum.parse(start, tz=cfg.timezone),
        latest=pendulum.parse(end, tz=cfg.timezone),
        catchup=True,
    )
    last: DataInterval | None = None
    found = []
    while (
        info := timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
    ) is not None:
        found.append(pendulum.instance(info.run_after).in_timezone(cfg.timezone))
        last = info.data_interval
        assert len(found) < 2000, "timetable does not advance"
    return found


def per_local_date(found: list[pendulum.DateTime]) -> Counter[str]:
    return Counter(run.to_date_string() for run in found)


def test_one_time_job_has_no_timetable_and_runs_once() -> None:
    cfg = ScheduleFields(keep_updated=False, frequency="hourly")
    assert build_timetable(cfg) is None
    assert cron_expression(cfg) is None
    assert dag_schedule(cfg) == "@once"
    assert describe_schedule(cfg) == "once"


@pytest.mark.parametrize(
    ("fields", "cron", "words"),
    [
        ({"frequency": "hourly"}, "0 * * * *", "hourly (UTC)"),
        ({"frequency": "every 15 minutes"}, "*/15 * * * *", "every 15 minutes (UTC)"),
        (
            {"frequency": "Every 5 minutes", "timezone": NEW_YORK},
            "*/5 * * * *",
            f"every 5 minutes ({NEW_YORK})",
        ),
        ({"frequency": "every 6 hours", "timezone": NEW_YORK}, "0 */6 * * *", f"every 6 hours ({NEW_YORK})"),
        ({"frequency": "daily"}, "0 0 * * *", "daily at 00:00 UTC"),
        (
            {"frequency": "daily", "time_of_day": "02:30", "timezone": NEW_YORK},
            "30 2 * * *",
            f"daily at 02:30 {NEW_YORK}",
        ),
        (
            {"frequency": "weekly", "day_of_week": "sunday", "time_of_day": "23:05"},
            "5 23 * * 0",
            "weekly on Sunday at 23:05 UTC",
        ),
        (
            {"frequency": "weekly", "day_of_week": "friday", "time_of_day": "09:15"},
            "15 9 * * 5",
            "weekly on Friday at 09:15 UTC",
        ),
        (
            {"frequency": "monthly", "day_of_month": 15, "time_of_day": "06:00"},
            "0 6 15 * *",
            "monthly on day 15 at 06:00 UTC",
        ),
    ],
)
def test_each_frequency_maps_to_a_cron_in_the_job_timezone(fields, cron, words) -> None:
    cfg = schedule(**fields)
    timetable = scheduler_timetable(cfg)
    assert cron_expression(cfg) == cron
    assert timetable._expression == cron
    assert timetable.summary == words  # the DAG list's Schedule column
    assert timetable._timezone.name == cfg.timezone
    assert describe_schedule(cfg) == words
    assert dag_schedule(cfg) == build_timetable(cfg)


@pytest.mark.parametrize("dst_day", ["2026-03-08", "2027-03-14"])
def test_daily_job_in_the_spring_forward_gap_runs_once_that_day(dst_day: str) -> None:
    cfg = schedule(frequency="daily", time_of_day="02:30", timezone=NEW_YORK)
    day = pendulum.parse(dst_day, tz=NEW_YORK)
    found = runs(cfg, day.subtract(days=5).to_date_string(), day.add(days=5).to_date_string())
    counts = per_local_date(found)
    assert set(counts.values()) == {1}
    assert len(counts) == 10
    on_dst_day = [run for run in found if run.to_date_string() == dst_day]
    assert [run.strftime("%H:%M %Z") for run in on_dst_day] == ["03:30 EDT"]  # 02:30 does not exist
    others = [run for run in found if run.to_date_string() != dst_day]
    assert {run.strftime("%H:%M") for run in others} == {"02:30"}


@pytest.mark.parametrize("time_of_day", ["02:30", "01:30", "01:00", "00:30"])
def test_daily_job_on_the_fall_back_day_runs_once(time_of_day: str) -> None:
    cfg = schedule(frequency="daily", time_of_day=time_of_day, timezone=NEW_YORK)
    found = runs(cfg, "2026-10-27", "2026-11-05")
    counts = per_local_date(found)
    assert set(counts.values()) == {1}
    assert "2026-11-01" in counts
    assert {run.strftime("%H:%M") for run in found} == {time_of_day}


def test_daily_job_in_the_repeated_hour_runs_once_without_a_running_scheduler_doubling_it(
    monkeypatch,
) -> None:
    """catchup=False, as our DAGs use: a scheduler checking every few minutes still starts 01:30 once."""
    cfg = schedule(frequency="daily", time_of_day="01:30", timezone=NEW_YORK)
    timetable = scheduler_timetable(cfg)
    now = pendulum.datetime(2026, 10, 31, 2, tz=NEW_YORK)  # just after the 10-31 run
    end = pendulum.datetime(2026, 11, 3, tz=NEW_YORK)
    monkeypatch.setattr("airflow.timetables.trigger.utcnow", lambda: now.in_timezone("UTC"))
    restriction = TimeRestriction(
        earliest=pendulum.datetime(2026, 1, 1, tz=NEW_YORK), latest=None, catchup=False
    )
    started: list[pendulum.DateTime] = []
    last: DataInterval | None = None
    while now < end:
        info = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        if info is not None and info.run_after <= now:
            started.append(pendulum.instance(info.run_after).in_timezone(NEW_YORK))
            last = info.data_interval
        now = now.add(minutes=15)
    assert [run.to_date_string() for run in started] == ["2026-10-31", "2026-11-01", "2026-11-02"]
    assert [run.strftime("%H:%M") for run in started] == ["01:30"] * 3
    assert len(set(started)) == len(started)


@pytest.mark.parametrize(
    ("day", "expected_runs"), [("2026-11-01", 25), ("2026-03-08", 23), ("2026-06-01", 24)]
)
def test_hourly_job_follows_elapsed_time_through_dst(day: str, expected_runs: int) -> None:
    cfg = schedule(frequency="hourly", timezone=NEW_YORK)
    start = pendulum.parse(day, tz=NEW_YORK)
    found = [run for run in runs(cfg, day, start.add(days=1).to_date_string()) if run.to_date_string() == day]
    assert len(found) == expected_runs
    gaps = {(later - earlier).total_seconds() for earlier, later in itertools.pairwise(found)}
    assert gaps == {timedelta(hours=1).total_seconds()}
    assert {run.minute for run in found} == {0}


@pytest.mark.parametrize("every", [2, 3, 4, 6, 8, 12])
@pytest.mark.parametrize("day", ["2026-03-08", "2026-11-01"])
def test_every_n_hours_keeps_one_run_per_slot_on_dst_days(every: int, day: str) -> None:
    cfg = schedule(frequency=f"every {every} hours", timezone=NEW_YORK)
    start = pendulum.parse(day, tz=NEW_YORK)
    found = runs(cfg, start.subtract(days=1).to_date_string(), start.add(days=2).to_date_string())
    on_day = [run for run in found if run.to_date_string() == day]
    assert len(on_day) == 24 // every
    assert len({run.in_timezone("UTC") for run in found}) == len(found)
    # each slot at its local hour, except a slot inside the spring-forward gap, which runs when it ends
    assert all(run.minute == 0 and (run.hour % every == 0 or run.hour == 3) for run in on_day)


def test_weekly_job_keeps_its_local_time_across_european_dst() -> None:
    cfg = schedule(frequency="weekly", day_of_week="sunday", time_of_day="01:30", timezone="Europe/London")
    found = runs(cfg, "2026-03-01", "2026-04-30")  # the clocks go forward at 01:00 on Sunday 2026-03-29
    assert all(run.day_of_week == pendulum.SUNDAY for run in found)
    assert len(found) == 9
    assert {run.strftime("%H:%M") for run in found if run.to_date_string() != "2026-03-29"} == {"01:30"}
    assert [run.strftime("%H:%M %Z") for run in found if run.to_date_string() == "2026-03-29"] == [
        "02:30 BST"
    ]


def test_monthly_job_runs_on_its_day_each_month() -> None:
    cfg = schedule(frequency="monthly", day_of_month=28, time_of_day="06:00", timezone="Australia/Sydney")
    found = runs(cfg, "2026-01-01", "2026-12-31")
    assert [run.month for run in found] == list(range(1, 13))
    assert {(run.day, run.hour, run.minute) for run in found} == {(28, 6, 0)}


def test_sub_daily_jobs_run_on_the_hour_of_the_job_timezone() -> None:
    cfg = schedule(frequency="every 12 hours", timezone="Asia/Kolkata")  # UTC+05:30
    found = runs(cfg, "2026-05-01", "2026-05-03")
    assert [run.strftime("%H:%M") for run in found] == ["00:00", "12:00"] * 2 + ["00:00"]
    assert {run.in_timezone("UTC").minute for run in found} == {30}


def test_every_n_minutes_runs_on_the_same_minutes_of_every_hour() -> None:
    cfg = schedule(frequency="every 15 minutes", timezone=NEW_YORK)
    found = runs(cfg, "2026-06-01T00:00:00", "2026-06-01T03:00:00")
    assert len(found) == 13  # both ends included
    assert {run.minute for run in found} == {0, 15, 30, 45}
    assert all((b - a) == timedelta(minutes=15) for a, b in itertools.pairwise(found))


def test_every_n_minutes_follows_elapsed_time_on_the_fall_back_day() -> None:
    cfg = schedule(frequency="every 30 minutes", timezone=NEW_YORK)
    found = runs(cfg, "2026-11-01T00:00:00", "2026-11-01T04:00:00")
    assert all((b - a) == timedelta(minutes=30) for a, b in itertools.pairwise(found))
    assert len(found) == 11  # five hours elapse between local 00:00 and 04:00 (both ends included)


@pytest.mark.parametrize("every", [5, 6, 10, 12, 15, 20, 30])
def test_each_sub_hourly_interval_is_accepted(every: int) -> None:
    cfg = schedule(frequency=f"every {every} minutes")
    assert cfg.every_minutes == every and cfg.is_sub_daily
    assert cron_expression(cfg) == f"*/{every} * * * *"


@pytest.mark.parametrize("every", [0, 1, 4, 7, 45, 60, 90])
def test_sub_hourly_intervals_below_five_or_not_dividing_the_hour_are_refused(every: int) -> None:
    with pytest.raises(ValueError, match=f"every {every} minutes"):
        schedule(frequency=f"every {every} minutes")


def test_a_sub_hourly_audience_job_shares_scans_younger_than_its_interval() -> None:
    from lytics_provider.jobs.base import AudienceExportConfig

    cfg = AudienceExportConfig(type="x", audience="a", keep_updated=True, frequency="every 15 minutes")
    assert cfg.scan_max_age_minutes == 5
    daily = AudienceExportConfig(type="x", audience="a", keep_updated=True, frequency="daily")
    assert daily.scan_max_age_minutes == 30
    with pytest.raises(ValueError, match="below 15"):
        AudienceExportConfig(
            type="x", audience="a", keep_updated=True, frequency="every 15 minutes", scan_max_age_minutes=15
        )
