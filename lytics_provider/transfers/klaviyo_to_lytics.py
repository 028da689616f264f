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

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

from lytics_provider.hooks.klaviyo import KlaviyoHook
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.windowed_import import ImportWindow, Page, WindowedImportOperator

USERS_STREAM = "klaviyo_users"
ACTIVITY_STREAM = "klaviyo_activity"
DEFAULT_SINCE = "2000-01-01"


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


class KlaviyoToLyticsOperator(WindowedImportOperator):
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

    service = "klaviyo"

    def __init__(
        self,
        *,
        klaviyo_conn_id: str = KlaviyoHook.default_conn_name,
        import_users: bool = True,
        import_activity: bool = True,
        initial_since: str = DEFAULT_SINCE,
        users_stream: str = USERS_STREAM,
        activity_stream: str = ACTIVITY_STREAM,
        **kwargs: Any,
    ) -> None:
        super().__init__(initial_since=initial_since, **kwargs)
        keep_arguments(self, locals())
        self.require_a_stream(import_users=import_users, import_activity=import_activity)

    def make_hook(self) -> KlaviyoHook:
        return KlaviyoHook(self.klaviyo_conn_id)

    def window_end(self, now_ms: int) -> str:
        return iso_ms(now_ms)

    def import_streams(self, run: ImportWindow) -> dict[str, Any]:
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
        first = self.initial_since if "T" in self.initial_since else f"{self.initial_since}T00:00:00Z"
        report: dict[str, Any] = {}
        for wanted, name, path, field, extra, stream, convert in streams:
            if wanted:
                report[name] = self.cursor_stream(
                    run,
                    name,
                    stream,
                    partial(_pages, run.hook, path, field, extra, run.until, convert),
                    first=first,
                    mark_key=f"{name}_since",
                    timestamp_field="ts" if name == "activity" else None,
                )
        return report


def _pages(
    hook: KlaviyoHook,
    path: str,
    field: str,
    extra: dict[str, Any],
    until: str,
    convert: Callable[[dict[str, Any], dict[tuple[str, str], dict[str, Any]]], dict[str, Any]],
    since: str,
    resume: str | None,
) -> Iterator[Page]:
    """The records of each page of ``path`` with ``since <= field < until``, and the next page's link."""
    params = {
        "filter": f"greater-or-equal({field},{since}),less-than({field},{until})",
        "sort": field,
        **extra,
    }
    for body, following in hook.iter_pages(path, params, resume=resume):
        included = _included(body)
        yield [convert(item, included) for item in body.get("data") or []], following
