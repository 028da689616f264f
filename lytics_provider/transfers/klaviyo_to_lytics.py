"""Import Users & Activity: Klaviyo profiles into ``klaviyo_users``, events into ``klaviyo_activity``.

Each run reads what changed since the last successful run, up to the run's start time (fixed for
the run, so a retry reads the same window): profiles by ``updated`` and events by ``datetime``,
each sorted ascending and read page by page by following the JSON:API ``links.next`` cursor.
After Lytics acknowledged a page, its ``links.next`` is saved in the run folder, so a retried task
continues after the last accepted page; the window's end becomes the next run's start once every
page of the stream was acknowledged. A dry run reads, sends with Lytics' ``dryrun`` and moves
nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseOperator, Context

from lytics_provider.files.ingest import FileCheckpoint, StateCheckpoint, StreamWriter
from lytics_provider.hooks.klaviyo import KlaviyoHook
from lytics_provider.operators.lytics import as_bool
from lytics_provider.pipeline.workarea import JobState, run_dir

USERS_STREAM = "klaviyo_users"
ACTIVITY_STREAM = "klaviyo_activity"
DEFAULT_SINCE = "2000-01-01"
_DONE = "done"


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def user_record(item: dict[str, Any], included: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    """A ``klaviyo_users`` record: ``klaviyo_id``, ``email`` and the profile's attributes."""
    attributes = dict(item.get("attributes") or {})
    record: dict[str, Any] = {"klaviyo_id": str(item.get("id"))}
    for name, value in attributes.items():
        if value in (None, "", {}, []):
            continue
        if name == "properties":
            record.update({f"klaviyo_{k}": v for k, v in value.items()})
        elif name == "location":
            record.update({f"klaviyo_{k}": v for k, v in value.items() if v not in (None, "")})
        else:
            record[name] = str(value).strip().lower() if name == "email" else value
    return record


def activity_record(item: dict[str, Any], included: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    """A ``klaviyo_activity`` record: the event, its metric name and the profile's id and email."""
    attributes = dict(item.get("attributes") or {})
    links = item.get("relationships") or {}
    metric = ((links.get("metric") or {}).get("data") or {}).get("id")
    profile = ((links.get("profile") or {}).get("data") or {}).get("id")
    record: dict[str, Any] = {
        "event_id": str(item.get("id")),
        "klaviyo_id": profile,
        "metric_id": metric,
        "event": (included.get(("metric", str(metric))) or {}).get("name"),
        "email": str((included.get(("profile", str(profile))) or {}).get("email") or "").lower() or None,
        "ts": attributes.get("datetime"),
    }
    for key, value in (attributes.get("event_properties") or {}).items():
        if value not in (None, ""):
            record[f"klaviyo_{key.lstrip('$')}"] = value
    return {k: v for k, v in record.items() if v is not None}


def _included(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (str(i.get("type")), str(i.get("id"))): dict(i.get("attributes") or {})
        for i in body.get("included") or []
    }


class KlaviyoToLyticsOperator(BaseOperator):
    """Import Klaviyo profiles and events changed since the last run; see the module docstring.

    :param job_id: the job's id (checkpoints, run folder).
    :param klaviyo_conn_id: the ``klaviyo`` connection.
    :param lytics_conn_id: the Lytics connection.
    :param import_users: read profiles into ``users_stream``.
    :param import_activity: read events into ``activity_stream``.
    :param initial_since: where the first run starts (ISO date).
    :param users_stream: the Lytics stream of profiles.
    :param activity_stream: the Lytics stream of events.
    """

    template_fields: Sequence[str] = ("initial_since",)

    def __init__(
        self,
        *,
        job_id: str,
        klaviyo_conn_id: str = KlaviyoHook.default_conn_name,
        lytics_conn_id: str = "lytics_default",
        import_users: bool = True,
        import_activity: bool = True,
        initial_since: str = DEFAULT_SINCE,
        users_stream: str = USERS_STREAM,
        activity_stream: str = ACTIVITY_STREAM,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not import_users and not import_activity:
            raise ValueError("select users, activity or both to import (import_users / import_activity)")
        self.job_id = job_id
        self.klaviyo_conn_id = klaviyo_conn_id
        self.lytics_conn_id = lytics_conn_id
        self.import_users = import_users
        self.import_activity = import_activity
        self.initial_since = initial_since
        self.users_stream = users_stream
        self.activity_stream = activity_stream

    def execute(self, context: Context) -> dict[str, Any]:
        from lytics_provider.hooks.lytics import LyticsHook

        params = context.get("params") or {}
        dry_run, full = as_bool(params.get("dry_run")), as_bool(params.get("full_refresh"))
        folder = run_dir(self.job_id, context["run_id"])
        window = FileCheckpoint(folder / "klaviyo_window.json")
        until = window.load()
        if until is None:
            until = iso_ms(int(time.time() * 1000))
            window.save(until)
        hook = KlaviyoHook(self.klaviyo_conn_id)
        lytics = LyticsHook(self.lytics_conn_id)
        report: dict[str, Any] = {"until": until, "dry_run": dry_run}
        streams = (
            (
                self.import_users, "users", "/api/profiles", "updated", {"page[size]": 100},
                self.users_stream, user_record,
            ),
            (
                self.import_activity, "activity", "/api/events", "datetime", {"include": "metric,profile"},
                self.activity_stream, activity_record,
            ),
        )  # fmt: skip
        for wanted, name, path, field, extra, stream, convert in streams:
            if not wanted:
                continue
            mark = StateCheckpoint(self.job_id, f"{name}_since")
            first = self.initial_since if "T" in self.initial_since else f"{self.initial_since}T00:00:00Z"
            since = first if full else (mark.load() or first)
            params = {
                "filter": f"greater-or-equal({field},{since}),less-than({field},{until})",
                "sort": field,
                **extra,
            }
            cursor = FileCheckpoint(folder / f"klaviyo_{name}_cursor.json")
            report[name] = self._read(
                hook, lytics, path, params, stream, convert, cursor, dry_run, name == "activity"
            )
            report[name]["since"] = since
            if not dry_run:
                mark.save(until)
                cursor.clear()
        report["klaviyo_calls"] = hook.calls
        if dry_run:
            self.log.info("Dry run: checkpoints not moved. Report: %s", report)
            return report
        JobState(self.job_id).update(last_run_id=context["run_id"], last_report=report)
        self.log.info("Imported. Report: %s", report)
        return report

    def _read(
        self,
        hook: KlaviyoHook,
        lytics: Any,
        path: str,
        params: dict[str, Any],
        stream: str,
        convert: Callable[[dict[str, Any], dict[tuple[str, str], dict[str, Any]]], dict[str, Any]],
        cursor: FileCheckpoint,
        dry_run: bool,
        timed: bool,
    ) -> dict[str, Any]:
        resume = None if dry_run else cursor.load()
        writer = StreamWriter(
            lytics, stream, timestamp_field="ts" if timed else None, dryrun=dry_run,
            on_ack=None if dry_run else cursor.save,
        )  # fmt: skip
        read = 0
        pages = [] if resume == _DONE else hook.iter_pages(path, params, resume=resume)
        for body, following in pages:
            included = _included(body)
            writer.extend(convert(item, included) for item in body.get("data") or [])
            writer.flush(position=following or _DONE)
            read += len(body.get("data") or [])
        return {"resumed_at": resume, "read": read, "accepted": writer.accepted, "rejected": writer.rejected}
