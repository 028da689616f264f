"""A deferrable wait for a destination's bulk job (import, deletion, load job).

The trigger runs in Airflow's triggerer: it calls a status callable (a module-level function named
by its dotted path, called with ``kwargs`` in a thread) every ``poll_interval`` seconds with an
async sleep, and fires one event when the status leaves ``pending``, when the callable fails or
when ``timeout`` passes. The deferred operator resumes in ``method_name`` with the event:
``{"job_id", "status"}``, plus ``"error"`` or ``"timed_out": true``. ``kwargs`` hold connection
ids and job ids only, never secrets (they are stored in the metadata database).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.sdk.module_loading import import_string
from airflow.triggers.base import BaseTrigger, TriggerEvent


class BulkJobTrigger(BaseTrigger):
    """Poll ``status_callable(**kwargs)`` until the status is not in ``pending``.

    :param status_callable: dotted path of a function returning the job's status as text.
    :param kwargs: keyword arguments of the callable (JSON-serialisable, no secrets).
    :param job_id: the bulk job's id, echoed in the event.
    :param pending: statuses meaning "still running".
    :param poll_interval: seconds between polls.
    :param timeout: seconds from ``started_at`` after which the trigger gives up.
    :param started_at: epoch seconds when the wait began (kept across triggerer restarts).
    """

    def __init__(
        self,
        status_callable: str,
        kwargs: dict[str, Any],
        job_id: str,
        pending: list[str],
        poll_interval: float = 15.0,
        timeout: float = 6 * 3600.0,
        started_at: float | None = None,
    ) -> None:
        super().__init__()
        self.status_callable = status_callable
        self.kwargs = dict(kwargs)
        self.job_id = job_id
        self.pending = list(pending)
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.started_at = time.time() if started_at is None else started_at

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__name__}",
            {
                "status_callable": self.status_callable,
                "kwargs": self.kwargs,
                "job_id": self.job_id,
                "pending": self.pending,
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
                "started_at": self.started_at,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        status_of = import_string(self.status_callable)
        while True:
            try:
                status = str(await asyncio.to_thread(status_of, **self.kwargs))
            except Exception as exc:  # the operator decides: it fails the task with this text
                yield TriggerEvent(
                    {"job_id": self.job_id, "status": None, "error": f"{type(exc).__name__}: {exc}"}
                )
                return
            if status not in self.pending:
                yield TriggerEvent({"job_id": self.job_id, "status": status})
                return
            if time.time() - self.started_at >= self.timeout:
                yield TriggerEvent({"job_id": self.job_id, "status": status, "timed_out": True})
                return
            await asyncio.sleep(self.poll_interval)
