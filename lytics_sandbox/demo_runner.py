"""Trigger every example DAG once through Airflow's REST API and print what each run did.

``python -m lytics_sandbox.demo_runner --url http://127.0.0.1:8080 --password-file ... --jobs-dir
include/jobs --skipped .demo/stands/env.json --out .demo/demo-table.md`` waits until the DAGs of the
job configs are parsed, unpauses and triggers each one (Airflow runs them in parallel, bounded by
its parallelism), polls the runs, reads the report (the XCom of the DAG's last tasks) and prints a
table: DAG, state, members, delivered, rejected, seconds, and for a run that did not succeed the
failed task and the first line of its error. Nothing in a row is made up: a run that failed shows
``failed`` and the error from its task log.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

TERMINAL = {"success", "failed"}
COLUMNS = ("DAG", "state", "members", "delivered", "rejected", "seconds", "note")


@dataclass
class Row:
    """One DAG's line in the table."""

    dag_id: str
    state: str
    members: int | None = None
    delivered: int | None = None
    rejected: int | None = None
    seconds: float | None = None
    note: str = ""

    @property
    def green(self) -> bool:
        return self.state == "success"

    def cells(self) -> tuple[str, ...]:
        mark = "✅" if self.green else "❌"
        seconds = "" if self.seconds is None else f"{self.seconds:.0f}"
        return (
            self.dag_id,
            f"{mark} {self.state}",
            _count(self.members),
            _count(self.delivered),
            _count(self.rejected),
            seconds,
            self.note.replace("|", "\\|"),
        )


def _count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def markdown_table(rows: Sequence[Row], skipped: Mapping[str, str] | None = None) -> str:
    """The rows as a Markdown table, a line counting the green ones, and the stand-ins not running."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    green = sum(row.green for row in rows)
    lines.append("")
    lines.append(f"{green} of {len(rows)} runs succeeded.")
    for name, why in sorted((skipped or {}).items()):
        lines.append(f"Stand-in not running: {name} ({why}).")
    return "\n".join(lines) + "\n"


def report_figures(reports: Iterable[Mapping[str, Any]]) -> tuple[int | None, int | None, int | None]:
    """``(members, delivered, rejected)`` summed over the report XComs of a run's last tasks."""
    from lytics_provider.jobs.run_note import delivered_count
    from lytics_provider.operators.alerts import count_rejected

    members = delivered = rejected = None
    for report in reports:
        if not isinstance(report, Mapping):
            continue
        report = dict(report)
        count = report.get("members")
        if isinstance(count, int) and not isinstance(count, bool):
            members = (members or 0) + count
        sent = delivered_count(report.get("delivery") or {})
        if sent is None:
            sent = delivered_count(report)
        if sent is not None:
            delivered = (delivered or 0) + sent
        rejected = (rejected or 0) + count_rejected(report)
    return members, delivered, rejected


def first_error(log: Any) -> str:
    """The first line of the last error a task log (as the REST API serves it) holds."""
    events: list[Any] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if "event" in value:
                events.append(value)
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(log)
    for event in reversed(events):
        if str(event.get("level", "")).lower() in ("error", "critical"):
            text = str(event.get("event") or "")
            error = event.get("error_detail")
            if isinstance(error, list) and error and isinstance(error[0], dict):
                exc = error[-1]
                text = f"{exc.get('exc_type', '')}: {exc.get('exc_value', '')}"
            if text.strip():
                return text.strip().splitlines()[0][:300]
    return ""


class AirflowApi:
    """The few REST calls the demo makes, with the admin's JWT."""

    def __init__(self, url: str, username: str, password: str) -> None:
        self.url = url.rstrip("/")
        self.username, self.password = username, password
        self._token = ""

    def token(self) -> str:
        if not self._token:
            response = requests.post(
                f"{self.url}/auth/token",
                json={"username": self.username, "password": self.password},
                timeout=30,
            )
            response.raise_for_status()
            self._token = response.json()["access_token"]
        return self._token

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token()}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.url}/api/v2{path}", headers=headers, timeout=60, **kwargs)

    def json(self, method: str, path: str, attempts: int = 5, **kwargs: Any) -> Any:
        """The JSON answer of a call; a 5xx or a timeout (SQLite busy under load) is tried again."""
        for attempt in range(1, attempts + 1):
            try:
                response = self.call(method, path, **kwargs)
            except requests.RequestException:
                if attempt == attempts:
                    raise
                time.sleep(attempt)
                continue
            if response.status_code < 500 or attempt == attempts:
                response.raise_for_status()
                return response.json()
            time.sleep(attempt)
        raise AssertionError("unreachable")


@dataclass
class DemoRun:
    """One DAG's run: triggered, then polled until it ends."""

    dag_id: str
    run_id: str = ""
    started: float = 0.0
    row: Row | None = None


def trigger(api: AirflowApi, dag_id: str) -> DemoRun:
    """Unpause ``dag_id`` and trigger one run (no logical date)."""
    api.json("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
    run = api.json("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": {}})
    return DemoRun(dag_id, run["dag_run_id"], time.monotonic())


def finish(api: AirflowApi, run: DemoRun, state: str) -> Row:
    """The row of a run that ended: its report figures, or the failed task and its error."""
    seconds = time.monotonic() - run.started
    base = f"/dags/{run.dag_id}/dagRuns/{run.run_id}"
    tasks = api.json("GET", f"/dags/{run.dag_id}/tasks")["tasks"]
    leaves = [t["task_id"] for t in tasks if not t.get("downstream_task_ids") and t["task_id"] != "alerts"]
    reports = []
    for task_id in leaves:
        response = api.call("GET", f"{base}/taskInstances/{task_id}/xcomEntries/return_value")
        if response.status_code == 200:
            reports.append(response.json().get("value"))
    members, delivered, rejected = report_figures(r for r in reports if isinstance(r, Mapping))
    note = ""
    if state != "success":
        instances = api.json("GET", f"{base}/taskInstances")["task_instances"]
        failed = [ti for ti in instances if ti.get("state") == "failed"]
        if failed:
            ti = failed[0]
            error = task_error(api, base, ti["task_id"], max(1, ti.get("try_number") or 1))
            note = f"{ti['task_id']}: {error}"
        else:
            states = sorted({str(ti.get("state")) for ti in instances})
            note = f"task states {states}"
    return Row(run.dag_id, state, members, delivered, rejected, seconds, note)


def stop_if_stuck(api: AirflowApi, run: DemoRun, run_timeout: float) -> Row | None:
    """Stop a run whose task waits for a retry (its first try failed) or that is still running after
    ``run_timeout`` seconds: the run is set to failed and its row says which it was and why."""
    base = f"/dags/{run.dag_id}/dagRuns/{run.run_id}"
    instances = api.json("GET", f"{base}/taskInstances")["task_instances"]
    retrying = [ti for ti in instances if ti.get("state") == "up_for_retry"]
    overdue = time.monotonic() - run.started > run_timeout
    if not retrying and not overdue:
        return None
    api.json("PATCH", base, json={"state": "failed"})
    if retrying:
        ti = retrying[0]
        error = task_error(api, base, ti["task_id"], max(1, ti.get("try_number") or 1))
        note = f"{ti['task_id']}: {error}"
        return Row(run.dag_id, "up_for_retry", seconds=time.monotonic() - run.started, note=note)
    busy = sorted(ti["task_id"] for ti in instances if ti.get("state") in ("running", "deferred", "queued"))
    note = f"still in {', '.join(busy) or 'the queue'} after {run_timeout:.0f} s; the demo stopped the run"
    return Row(run.dag_id, "timed out", seconds=time.monotonic() - run.started, note=note)


def task_error(api: AirflowApi, base: str, task_id: str, try_number: int) -> str:
    """The first line of the error in one task try's log."""
    log = api.call(
        "GET",
        f"{base}/taskInstances/{task_id}/logs/{try_number}",
        params={"full_content": "true"},
        headers={"Accept": "application/json"},
    )
    return first_error(log.json()) if log.status_code == 200 else f"log: HTTP {log.status_code}"


def wait_for_dags(api: AirflowApi, dag_ids: Sequence[str], timeout: float) -> set[str]:
    """The DAG ids the dag-processor has stored within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    found: set[str] = set()
    while time.monotonic() < deadline:
        page = api.json("GET", "/dags", params={"limit": 1000, "dag_id_pattern": "lytics_"})
        found = {d["dag_id"] for d in page["dags"]} & set(dag_ids)
        if found == set(dag_ids):
            break
        time.sleep(3)
    return found


def run_all(
    api: AirflowApi,
    dag_ids: Sequence[str],
    timeout: float,
    max_active: int = 4,
    run_timeout: float = 180,
    progress: Callable[[str], None] = print,
) -> list[Row]:
    """Trigger the DAGs, ``max_active`` runs in flight at a time, and return the rows in ``dag_ids`` order.

    SQLite takes one writer at a time; a few runs in flight keep the scheduler's commits from
    failing on a locked database, and the executor's parallelism bounds the tasks anyway.
    """
    parsed = wait_for_dags(api, dag_ids, timeout=min(timeout, 300))
    rows: dict[str, Row] = {}
    for dag_id in dag_ids:
        if dag_id not in parsed:
            rows[dag_id] = Row(
                dag_id, "not parsed", note="the DAG is not in Airflow (see the DAG import errors)"
            )
    waiting = [d for d in dag_ids if d in parsed]
    pending: list[DemoRun] = []
    deadline = time.monotonic() + timeout
    while (waiting or pending) and time.monotonic() < deadline:
        while waiting and len(pending) < max_active:
            started = _trigger_or_row(api, waiting.pop(0))
            if isinstance(started, Row):
                rows[started.dag_id] = started
            else:
                pending.append(started)
        time.sleep(2)
        still = []
        for run in pending:
            try:
                state = api.json("GET", f"/dags/{run.dag_id}/dagRuns/{run.run_id}")["state"]
                if state in TERMINAL:
                    rows[run.dag_id] = finish(api, run, state)
                    progress(f"    {len(rows):>3}/{len(dag_ids)} {run.dag_id}: {state}")
                    continue
                stopped = stop_if_stuck(api, run, run_timeout)
                if stopped is not None:
                    rows[run.dag_id] = stopped
                    progress(f"    {len(rows):>3}/{len(dag_ids)} {run.dag_id}: {stopped.state}")
                    continue
            except requests.RequestException as exc:
                progress(f"    {run.dag_id}: {exc} (asking again)")
            still.append(run)
        pending = still
    for run in pending:
        rows[run.dag_id] = Row(
            run.dag_id, "timed out", seconds=time.monotonic() - run.started, note="still running"
        )
    for dag_id in waiting:
        rows[dag_id] = Row(dag_id, "not triggered", note=f"the demo's {timeout:.0f} s ran out first")
    return [rows[d] for d in dag_ids]


def _trigger_or_row(api: AirflowApi, dag_id: str) -> DemoRun | Row:
    try:
        return trigger(api, dag_id)
    except requests.HTTPError as exc:
        return Row(dag_id, "not triggered", note=f"{exc.response.status_code}: {exc.response.text[:200]}")


def example_dag_ids(jobs_dir: Path) -> list[str]:
    """The DAG id of every valid job config in ``jobs_dir``, sorted."""
    from lytics_provider.jobs.loader import find_job_files, load_job_files

    jobs, _errors = load_job_files(find_job_files(jobs_dir))
    return sorted(job.dag_id for job in jobs)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lytics-demo-runner", description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--username", default="admin")
    p.add_argument("--password-file", type=Path, required=True, help="simple auth manager's passwords JSON")
    p.add_argument("--jobs-dir", type=Path, default=Path("include/jobs"))
    p.add_argument("--stands", type=Path, default=None, help="the JSON the --demo stand-ins wrote")
    p.add_argument("--out", type=Path, default=Path(".demo/demo-table.md"))
    p.add_argument("--timeout", type=float, default=900, help="seconds to wait for the runs")
    p.add_argument("--max-active", type=int, default=4, help="runs in flight at a time")
    p.add_argument("--run-timeout", type=float, default=180, help="seconds one run may take")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    password = json.loads(args.password_file.read_text())[args.username]
    skipped = json.loads(args.stands.read_text()).get("skipped", {}) if args.stands else {}
    api = AirflowApi(args.url, args.username, password)
    dag_ids = example_dag_ids(args.jobs_dir)
    started = time.monotonic()
    rows = run_all(api, dag_ids, args.timeout, args.max_active, args.run_timeout)
    table = markdown_table(rows, skipped)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    print(table)
    print(f"runs took {time.monotonic() - started:.0f} s; table written to {args.out}")
    return 0 if all(row.green for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
