"""Typed job configs: the fields every job shares, and the Keep Updated schedule fields.

Each integration defines its job types in ``lytics_provider.jobs.types.<integration>`` as
subclasses of :class:`JobConfig` with a ``type`` literal, declared in its
``lytics_provider/integrations/<integration>.yaml``. A job type adds its tasks to the DAG in ``add_tasks``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

import pendulum
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lytics_provider.jobs.alerts import AlertsConfig
from lytics_provider.jobs.fields import connection_field
from lytics_provider.jobs.member_identity import (
    check_identity_fields,
    identity_fields_field,
    resolve_identity,
)

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext

_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_EVERY_N_HOURS = re.compile(r"^every (\d{1,2}) hours$")
_EVERY_N_MINUTES = re.compile(r"^every (\d+) minutes?$")
HOURLY_DIVISORS = (2, 3, 4, 6, 8, 12)
MIN_INTERVAL_MINUTES = 5
"""The shortest Keep Updated interval: a run scans, plans and sends, so it cannot come more often."""
MINUTE_DIVISORS = tuple(n for n in range(MIN_INTERVAL_MINUTES, 60) if 60 % n == 0)
"""Sub-hourly intervals: divisors of 60 (runs fall on the same minutes of every hour)."""
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class StrictModel(BaseModel):
    """A model that refuses unknown keys (a typo is an error, never silently ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, defer_build=True)


class ScheduleFields(StrictModel):
    """Keep Updated, Frequency, Time of Day and Timezone, as the Lytics job forms have them."""

    keep_updated: bool = Field(
        default=False, description="Run again on the schedule below; false runs the job once."
    )
    frequency: str = Field(
        default="daily",
        description='How often a Keep Updated job runs: "every N minutes" (N in 5, 6, 10, 12, 15, 20, 30), '
        '"hourly", "every N hours" (N in 2, 3, 4, 6, 8, 12), "daily", "weekly" or "monthly".',
    )
    time_of_day: str | None = Field(
        default=None,
        description='Time of Day "HH:MM" (24-hour) for daily, weekly and monthly jobs; default "00:00".',
    )
    timezone: str = Field(default="UTC", description="IANA timezone of Time of Day, e.g. America/New_York.")
    day_of_week: Literal[WEEKDAYS] = Field(  # type: ignore[valid-type]
        default="monday", description="Day of a weekly run."
    )
    day_of_month: int = Field(default=1, ge=1, le=28, description="Day of a monthly run (1-28).")

    @field_validator("frequency")
    @classmethod
    def _check_frequency(cls, value: str) -> str:
        value = value.strip().lower()
        if value in ("hourly", "daily", "weekly", "monthly"):
            return value
        match = _EVERY_N_HOURS.match(value)
        if match and int(match.group(1)) in HOURLY_DIVISORS:
            return value
        minutes = _EVERY_N_MINUTES.match(value)
        if minutes:
            return _check_minutes(int(minutes.group(1)))
        raise ValueError(
            f'unknown frequency {value!r}; use "hourly", "every N hours" with N one of '
            f'{", ".join(map(str, HOURLY_DIVISORS))}, "every N minutes" with N one of '
            f'{", ".join(map(str, MINUTE_DIVISORS))}, "daily", "weekly" or "monthly"'
        )

    @field_validator("time_of_day")
    @classmethod
    def _check_time_of_day(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _TIME_OF_DAY.match(value):
            raise ValueError(f'time of day {value!r} is not "HH:MM" in 24-hour form, e.g. "02:30"')
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            pendulum.timezone(value)
        except Exception:
            raise ValueError(
                f"unknown timezone {value!r}; use an IANA name such as UTC, Europe/London or America/New_York"
            ) from None
        return value

    @model_validator(mode="after")
    def _time_of_day_needs_daily(self) -> ScheduleFields:
        if self.time_of_day is not None and self.is_sub_daily:
            raise ValueError(
                f"time_of_day is only used by daily, weekly and monthly jobs, not {self.frequency!r}; "
                "remove time_of_day or change frequency"
            )
        return self

    @property
    def is_sub_daily(self) -> bool:
        """True for every-N-minutes, hourly and every-N-hours frequencies."""
        return self.frequency == "hourly" or self.frequency.startswith("every ")

    @property
    def every_minutes(self) -> int | None:
        """Minutes between runs of a sub-hourly job (``every N minutes``); None otherwise."""
        match = _EVERY_N_MINUTES.match(self.frequency)
        return int(match.group(1)) if match else None

    @property
    def every_hours(self) -> int:
        """Hours between runs of a sub-daily job."""
        match = _EVERY_N_HOURS.match(self.frequency)
        return int(match.group(1)) if match else 1


def _check_minutes(every: int) -> str:
    """``every N minutes`` when N is allowed, else an error that says which N are."""
    allowed = ", ".join(map(str, MINUTE_DIVISORS))
    if every < MIN_INTERVAL_MINUTES:
        raise ValueError(
            f"every {every} minutes is shorter than the {MIN_INTERVAL_MINUTES}-minute minimum (each run "
            "scans the audience, plans and sends before the next may start); use "
            f'"every N minutes" with N one of {allowed}'
        )
    if every == 60:
        raise ValueError('every 60 minutes: write "hourly"')
    if every > 60 or 60 % every:
        raise ValueError(
            f"every {every} minutes does not divide the hour, so runs would drift against the clock; use "
            f'"every N minutes" with N one of {allowed}, or "hourly" / "every N hours"'
        )
    return f"every {every} minutes"


class JobConfig(ScheduleFields):
    """Fields shared by every job; subclasses add ``type`` and their own options."""

    type: str
    description: str | None = Field(default=None, description="Shown as the DAG description.")
    dag_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="DAG id; defaults to lytics_<file name without .yaml>.",
    )
    tags: list[str] = Field(default_factory=list, description="Extra DAG tags.")
    owner: str = Field(default="lytics", description="DAG owner shown in the UI.")
    retries: int = Field(default=3, ge=0, le=20, description="Task retries.")
    retry_delay_minutes: float = Field(default=2.0, gt=0, description="Minutes between task retries.")
    start_date: str = Field(
        default="2026-01-01", pattern=r"^\d{4}-\d{2}-\d{2}$", description="First date the schedule applies."
    )
    lytics_conn_id: str = connection_field("lytics_default", "Lytics connection id.")
    alerts: AlertsConfig | None = Field(
        default=None,
        description="Alerts to Slack, Microsoft Teams and e-mail: on a task's failure, on rejects above a "
        "threshold, and the run report (see lytics_provider/jobs/alerts.py).",
    )

    def add_tasks(self, job: JobContext) -> None:  # pragma: no cover - every job type overrides it
        """Add this job's tasks to the DAG being built."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """DAG params a user may override when triggering a run (UI or REST API)."""
        return {"dry_run": False}


class SharedScanFields(StrictModel):
    """How long a scan of the audience may be shared with other jobs."""

    scan_max_age_minutes: int = Field(
        default=30,
        ge=0,
        description="Read a scan of the same audience (same Lytics connection) that another job finished "
        "less than this many minutes ago, or wait for one running, instead of scanning again; 0 scans alone.",
    )


class AudienceExportConfig(JobConfig, SharedScanFields):
    """A job that scans one Lytics audience and delivers it somewhere."""

    audience: str = Field(min_length=1, description="Audience (segment) slug or id to export.")
    fields: list[str] | None = Field(
        default=None, description="Lytics fields to export; default all fields on the profile."
    )
    user_limit: int | None = Field(default=None, ge=1, description="Export at most this many users.")
    identity_fields: list[str] | None = identity_fields_field()

    _check_identity_fields = field_validator("identity_fields")(check_identity_fields)

    @model_validator(mode="before")
    @classmethod
    def _shared_scan_default_within_interval(cls, data: Any) -> Any:
        """A sub-hourly job shares scans up to a third of its interval old unless told otherwise."""
        if isinstance(data, dict) and "scan_max_age_minutes" not in data:
            match = _EVERY_N_MINUTES.match(str(data.get("frequency") or "").strip().lower())
            if match and int(match.group(1)) >= MIN_INTERVAL_MINUTES:
                data = {**data, "scan_max_age_minutes": int(match.group(1)) // 3}
        return data

    @model_validator(mode="after")
    def _shared_scan_shorter_than_interval(self) -> AudienceExportConfig:
        every = self.every_minutes
        if self.keep_updated and every and self.scan_max_age_minutes >= every:
            raise ValueError(
                f"scan_max_age_minutes {self.scan_max_age_minutes} is not shorter than the {every}-minute "
                "interval, so a run could reuse the scan of the run before it and miss the changes since; "
                f"set scan_max_age_minutes below {every} (e.g. {every // 3}) or remove it"
            )
        return self

    def identifier_fields(self) -> list[str]:
        """The job's own member identifiers, tried after ``_uid`` when ``identity_fields`` is unset."""
        return ["email"]

    def fields_and(self, names: Iterable[str | None]) -> list[str] | None:
        """What the scan reads: every field (None) when ``fields`` is unset, else ``fields`` and
        ``names`` (unset ones skipped), each once."""
        if self.fields is None:
            return None
        return list(dict.fromkeys([*self.fields, *(name for name in names if name)]))

    def identity(self) -> list[str]:
        """The identity fields of the job's scan (``identity_fields``, else the default)."""
        return resolve_identity(self.identity_fields, self.identifier_fields())

    def params(self) -> dict[str, Any]:
        """Audience, full refresh and dry run can be overridden per run."""
        return {"audience": self.audience, "full_refresh": False, "dry_run": False}

    def add_scan_deliver_report(self, job: JobContext, deliver: Any, **scan_options: Any) -> None:
        """Wire ``scan`` → ``deliver`` → ``report`` in ``job``'s DAG.

        :param deliver: the job's delivery task.
        :param scan_options: arguments of the scan task that add to or replace the job's own
            (``fields``, ``user_limit``, ``identity_fields``), e.g. ``digest_fields``.
        """
        from lytics_provider.jobs.sync_tasks import add_scan_chain

        options = {"fields": self.fields, "user_limit": self.user_limit, "identity_fields": self.identity()}
        add_scan_chain(job, deliver, lytics_conn_id=self.lytics_conn_id, **{**options, **scan_options})
