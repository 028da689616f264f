"""The alerts of a job run: on a task's failure, on rejects above a threshold, and the run report.

Every job config may carry an ``alerts:`` block (:class:`lytics_provider.jobs.alerts.AlertsConfig`).
The DAG then gets

* :class:`TaskFailureAlert` as every task's ``on_failure_callback`` (event type ``failure``): the
  task, the run, the try and the error's type and text;
* a last task, ``alerts`` (:class:`RunAlertsOperator`), after the run's last tasks: it reads their
  reports (XCom), counts the rejected rows in them and alerts when they are more than
  ``rejects_threshold`` (event type ``rejects``), and sends the run report (event type ``report``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context

from lytics_provider.notifications.alerts import (
    AlertChannels,
    JobAlert,
    error_text,
    failed,
    join_lines,
    send_alert,
)

REPORT_FACTS = ("members", "enters", "exits", "changes", "rows", "files", "dry_run")


class AlertsNotSent(Exception):
    """No channel of the alerts block took the alert (retried like any task error)."""


def count_rejected(value: Any) -> int:
    """Rejected rows anywhere in a report: every integer under a key ``rejected`` or ``*_rejected``."""
    return sum(n for n in _rejected_counts(value))


def _rejected_counts(value: Any) -> Iterator[int]:
    if isinstance(value, dict):
        for key, item in value.items():
            if (key == "rejected" or str(key).endswith("_rejected")) and isinstance(item, int):
                if not isinstance(item, bool):
                    yield item
            else:
                yield from _rejected_counts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _rejected_counts(item)


def rejects_files(value: Any) -> list[str]:
    """Every ``rejects_file`` / ``*_rejects_file`` path named in a report."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if str(key).endswith("rejects_file") and isinstance(item, str) and item:
                found.append(item)
            else:
                found.extend(rejects_files(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(rejects_files(item))
    return found


def _run_facts(context: Any) -> dict[str, str]:
    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    facts = {
        "job": str(getattr(dag, "dag_id", None) or getattr(ti, "dag_id", "")),
        "run": str(context.get("run_id") or getattr(ti, "run_id", "")),
    }
    return {k: v for k, v in facts.items() if v}


class TaskFailureAlert:
    """``on_failure_callback`` of a job's tasks: alert every channel that a task failed.

    :param channels: where the alert goes.
    """

    def __init__(self, channels: AlertChannels) -> None:
        self.channels = channels

    def alert(self, context: Any) -> JobAlert:
        ti = context.get("ti") or context.get("task_instance")
        task_id = str(getattr(ti, "task_id", "") or getattr(context.get("task"), "task_id", "?"))
        facts = _run_facts(context)
        facts["task"] = task_id
        if getattr(ti, "try_number", None):
            facts["try"] = str(ti.try_number)
        return JobAlert(
            title=f"Lytics job {facts.get('job', '?')}: task {task_id} failed",
            lines=join_lines([error_text(context.get("exception"))]),
            facts=facts,
        )

    def __call__(self, context: Any) -> None:
        send_alert(self.channels, self.alert(context), context)


class RunAlertsOperator(BaseOperator):
    """Alert on rejects above a threshold and send the run report, after the run's last tasks.

    :param channels: where the alerts go.
    :param event_types: ``rejects`` and / or ``report`` (``failure`` is the tasks' callback).
    :param rejects_threshold: alert when the run rejected more rows than this.
    :param report_task_ids: the tasks whose XCom is the run's report.
    """

    def __init__(
        self,
        *,
        channels: AlertChannels,
        event_types: Sequence[str],
        rejects_threshold: int,
        report_task_ids: Sequence[str],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.channels = channels
        self.event_types = list(event_types)
        self.rejects_threshold = rejects_threshold
        self.report_task_ids = list(report_task_ids)

    def alerts(self, context: Context) -> list[JobAlert]:
        reports = {tid: context["ti"].xcom_pull(task_ids=tid) for tid in self.report_task_ids}
        facts = _run_facts(context)
        job = facts.get("job", "?")
        rejected = count_rejected(reports)
        found: list[JobAlert] = []
        if "rejects" in self.event_types and rejected > self.rejects_threshold:
            files = [f for report in reports.values() for f in rejects_files(report)]
            found.append(
                JobAlert(
                    title=f"Lytics job {job}: {rejected} rows rejected (threshold {self.rejects_threshold})",
                    lines=tuple(f"reasons in {path}" for path in files),
                    facts={**facts, "rejected": str(rejected)},
                )
            )
        if "report" in self.event_types:
            summary: dict[str, str] = dict(facts)
            for report in reports.values():
                if isinstance(report, dict):
                    summary.update({k: str(report[k]) for k in REPORT_FACTS if k in report})
            summary["rejected"] = str(rejected)
            found.append(JobAlert(title=f"Lytics job {job}: run report", facts=summary))
        return found

    def execute(self, context: Context) -> dict[str, Any]:
        sent: dict[str, dict[str, str | None]] = {}
        for alert in self.alerts(context):
            results = send_alert(self.channels, alert, context)
            sent[alert.title] = results
            if results and len(failed(results)) == len(results):
                raise AlertsNotSent(f"no channel took the alert {alert.title!r}: {results}")
        self.log.info("Alerts: %s", sent or "none due")
        return {"alerts": sent}
