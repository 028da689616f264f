"""The DAG run's note: each run's report in one line, or the failed task's error and its fix.

The ``report`` task sets the note of its DAG run to the report's summary (members, enters, exits,
changes, delivered, rejected, API calls, rejects file); a task that fails for good sets it to the
task and the first line of its error (the project's errors end with the fix). The UI shows the
note on the run's page and in the runs list.

A task cannot change its own DAG run's note through the Task SDK, so the note goes through the
deployment's REST API (:class:`lytics_provider.hooks.airflow_api.AirflowApiHook`) with the
connection named by ``$LYTICS_RUN_NOTE_CONN_ID`` (default ``airflow_api``). Without that
connection no note is set and the run goes on; a note that cannot be set never fails a run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

RUN_NOTE_CONN_ENV = "LYTICS_RUN_NOTE_CONN_ID"
DEFAULT_RUN_NOTE_CONN_ID = "airflow_api"
_DELIVERED_KEYS = ("delivered", "sent", "accepted", "rows")


def run_note_conn_id() -> str:
    """The connection of the REST API the notes go through."""
    return os.environ.get(RUN_NOTE_CONN_ENV) or DEFAULT_RUN_NOTE_CONN_ID


def _ints_under(value: Any, keys: tuple[str, ...]) -> Iterator[int]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in keys and isinstance(item, int) and not isinstance(item, bool):
                yield item
            else:
                yield from _ints_under(item, keys)
    elif isinstance(value, list):
        for item in value:
            yield from _ints_under(item, keys)


def delivered_count(delivery: dict[str, Any]) -> int | None:
    """Rows the destination took: its ``delivered`` / ``sent`` / ``accepted`` / ``rows`` figure, or
    the sync outcomes less the rejected ones; None when the delivery report says neither."""
    for key in _DELIVERED_KEYS:
        value = delivery.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    outcomes = delivery.get("outcomes")
    if isinstance(outcomes, dict) and outcomes:
        return sum(int(n) for n in outcomes.values()) - int(delivery.get("rejected") or 0)
    return None


def api_calls_of(delivery: dict[str, Any]) -> int:
    """The destination's API calls: every ``api_calls`` in its report, else every ``requests``."""
    return sum(_ints_under(delivery, ("api_calls",))) or sum(_ints_under(delivery, ("requests",)))


def report_note(report: dict[str, Any]) -> str:
    """The run report in one line, e.g. ``1,204 members: 30 enters, 2 exits, 5 changes; ...``."""
    from lytics_provider.operators.alerts import count_rejected, rejects_files

    delivery = report.get("delivery") or {}
    delivered = delivered_count(delivery)
    api_calls = (report.get("scan_api_calls") or 0) + api_calls_of(delivery)
    rejected = count_rejected(report)
    parts = [
        f"{report.get('members') or 0:,} members: {report.get('enters', 0):,} enters, "
        f"{report.get('exits', 0):,} exits, {report.get('changes', 0):,} changes",
        _delivered_text(bool(report.get("dry_run")), delivered),
        f"rejected {rejected:,}",
        f"API calls {api_calls:,}",
    ]
    if rejected:
        parts.append("rejects " + ", ".join(f"`{path}`" for path in rejects_files(report)))
    return "; ".join(parts)


def _delivered_text(dry_run: bool, delivered: int | None) -> str:
    if dry_run:
        return "dry run, nothing sent"
    return "delivered (no count reported)" if delivered is None else f"delivered {delivered:,}"


def failure_note(context: Any) -> str:
    """The failed task and the first line of its error, which names the fix."""
    from lytics_provider.notifications.alerts import mask

    ti = context.get("ti") or context.get("task_instance")
    task_id = getattr(ti, "task_id", None) or getattr(context.get("task"), "task_id", "?")
    exc = context.get("exception")
    first_line = (str(exc).strip().splitlines() or [""])[0] if exc is not None else ""
    error = f"{type(exc).__name__}: {first_line}" if exc is not None else "no error recorded"
    tries = f" (try {ti.try_number})" if getattr(ti, "try_number", None) else ""
    return mask(f"Failed: task `{task_id}`{tries}: {error}")


def set_run_note(context: Any, note: str) -> bool:
    """Set the note of the context's DAG run; False (logged) when it could not be set."""
    from airflow.exceptions import AirflowNotFoundException

    from lytics_provider.hooks.airflow_api import AirflowApiHook

    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", None)
    run_id = context.get("run_id") or getattr(ti, "run_id", None)
    conn_id = run_note_conn_id()
    try:
        AirflowApiHook(conn_id).set_dag_run_note(str(dag_id), str(run_id), note)
    except AirflowNotFoundException:
        log.info("DAG run note not set: no '%s' connection (the Airflow REST API); note: %s", conn_id, note)
        return False
    except Exception as exc:
        log.warning("DAG run note not set through '%s': %s: %s", conn_id, type(exc).__name__, exc)
        return False
    log.info("DAG run note set: %s", note)
    return True


def note_failed_run(context: Any) -> None:
    """``on_failure_callback``: the DAG run's note names the failed task and its error."""
    set_run_note(context, failure_note(context))
