"""Vendor bulk jobs (imports, batches, exports) that run after the request that starts them.

Two halves, the same for every vendor that answers a bulk write with a job id:

- :func:`wait_for_answer`: poll the job's status resource until it leaves its pending statuses,
  and return the last answer (the hook's ``wait_for_<job>``).
- :class:`PlannedJobs`: a destination mixin that saves each job's id in the run's plan before it
  is waited for (:meth:`PlannedJobs.planned_job`), so a retried task waits for the job it started
  instead of sending the rows again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from lytics_provider.sync.plan import SyncPlan
from lytics_provider.sync.wait import wait_for_status


def wait_for_answer(
    fetch: Callable[[], dict[str, Any]],
    pending: Collection[str],
    poll_interval: float,
    timeout: float,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    status_key: str = "status",
) -> dict[str, Any]:
    """Call ``fetch`` until its answer's ``status_key`` is not in ``pending``; the last answer.

    :param fetch: reads the job's status resource once.
    :param pending: the statuses of a job still running.
    :param poll_interval: seconds between reads.
    :param timeout: seconds before :class:`~lytics_provider.sync.wait.BulkJobTimeout` is raised.
    :param what: names the job in the timeout error (``Mailchimp batch 123``).
    :param sleep: how the wait sleeps (tests pass a fake).
    :param status_key: the answer's status field.
    """
    last: dict[str, Any] = {}

    def poll() -> str:
        last.clear()
        last.update(fetch())
        return str(last.get(status_key))

    wait_for_status(poll, pending, poll_interval, timeout, what, sleep)
    return last


class PlannedJobs:
    """Destination mixin: the bulk jobs a run starts are kept in its plan, and waited for.

    :meth:`act` keeps the plan; :meth:`planned_job` answers the job saved under a key or starts
    one and saves its id before returning it; :attr:`jobs` counts the jobs this run started.
    :attr:`act_kinds` are the kinds :meth:`act` sends when it is given none.

    :param args: the destination's own arguments.
    :param poll_interval: seconds between reads of a job's status (default
        :attr:`default_poll_interval`).
    :param timeout: longest wait for one job, in seconds (default :attr:`default_timeout`).
    :param sleep: how the wait sleeps (tests pass a fake).
    :param kwargs: the destination's own keyword arguments.
    """

    act_kinds: Sequence[str] = ("add", "update", "remove", "unsubscribe")
    default_poll_interval = 5.0
    default_timeout = 3600.0
    plan: SyncPlan | None = None
    jobs = 0

    def __init__(
        self,
        *args: Any,
        poll_interval: float | None = None,
        timeout: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.poll_interval = self.default_poll_interval if poll_interval is None else poll_interval
        self.timeout = self.default_timeout if timeout is None else timeout
        self.sleep = sleep

    def act(self, plan: SyncPlan, kinds: Sequence[str] | None = None) -> None:
        """Keep the plan, then act as the destination does."""
        self.plan = plan
        super().act(plan, self.act_kinds if kinds is None else kinds)  # type: ignore[misc]

    def planned_job(self, key: str, start: Callable[[], str]) -> str:
        """The id of the job saved under ``key``, else of the one ``start`` starts (saved first).

        :param key: the job's step in the plan (unique per target and rows).
        :param start: starts the job; returns its id.
        """
        assert self.plan is not None, "act() keeps the plan"
        job_id = self.plan.step(key)
        if job_id is None:
            job_id = start()
            self.plan.set_step(key, job_id)
            self.jobs += 1
        return str(job_id)

    def forget_job(self, key: str) -> None:
        """Drop the job saved under ``key`` (it ended without completing; the retry starts another)."""
        assert self.plan is not None, "act() keeps the plan"
        self.plan.set_step(key, None)
