"""Deferrable Dotdigital waits: the bulk-job trigger against the Dotdigital sandbox, and the export
operator deferring while a bulk import or removal runs, then resuming from the trigger's event."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from lytics_provider.hooks.dotdigital import DotdigitalHook
from lytics_provider.jobs.types.dotdigital import DotdigitalExportContactsJob
from lytics_provider.operators.dotdigital import DotdigitalExportContactsOperator, DotdigitalImportError
from lytics_provider.operators.lytics import LyticsAudienceScanOperator, LyticsCommitRunOperator
from lytics_provider.triggers.bulk_job import BulkJobTrigger
from lytics_sandbox.dotdigital import DotdigitalSandbox
from lytics_sandbox.lytics import LyticsSandbox
from lytics_sandbox.synth import SyntheticAccount
from tests.helpers import make_context, run_task

AUDIENCE = "newsletter"
IMPORT_ROUTE = "POST /v2/address-books/{book}/contacts/import"
IMPORT_STATUS = "GET /v2/contacts/import/{import_id}"
DELETE_ROUTE = "POST /v2/address-books/{book}/contacts/delete"
STATUS_OF_IMPORT = "lytics_provider.hooks.dotdigital.import_status_of"


@pytest.fixture
def lytics_account() -> SyntheticAccount:
    account = SyntheticAccount(audiences={AUDIENCE: 60}, invalid_email_rate=0.05)
    account.set_churn(AUDIENCE, exits=6, enters=4, changes=0)
    return account


@pytest.fixture
def dd(dd: DotdigitalSandbox) -> DotdigitalSandbox:
    """Bulk imports and removals that stay unfinished for three status polls."""
    dd.import_polls = dd.deletion_polls = 3
    return dd


def events_of(trigger: BulkJobTrigger) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


def start_import(dd: DotdigitalSandbox, tmp_path: Path) -> str:
    hook = DotdigitalHook()
    book = hook.create_address_book("Deferred")
    path = tmp_path / "contacts.csv"
    path.write_text("Email\r\na@example.com\r\nb@example.com\r\n", encoding="utf-8")
    return str(hook.import_contacts(path, book_id=book["id"])["id"])


def trigger_for(import_id: str, **kwargs: Any) -> BulkJobTrigger:
    return BulkJobTrigger(
        status_callable=STATUS_OF_IMPORT,
        kwargs={"dotdigital_conn_id": "dotdigital_default", "job_id": import_id},
        job_id=import_id,
        pending=["NotFinished"],
        **{"poll_interval": 0.01, **kwargs},
    )


def test_trigger_polls_the_import_until_it_finishes(dd, tmp_path) -> None:
    import_id = start_import(dd, tmp_path)
    trigger = trigger_for(import_id)
    path, kwargs = trigger.serialize()
    assert path == "lytics_provider.triggers.bulk_job.BulkJobTrigger"
    assert "password" not in str(kwargs)
    assert events_of(BulkJobTrigger(**kwargs)) == [{"job_id": import_id, "status": "Finished"}]
    assert dd.calls_to(IMPORT_STATUS) == 4  # NotFinished for import_polls=3 polls, then Finished


def test_trigger_gives_up_after_its_timeout(dd, tmp_path) -> None:
    import_id = start_import(dd, tmp_path)
    events = events_of(trigger_for(import_id, timeout=0))
    assert events == [{"job_id": import_id, "status": "NotFinished", "timed_out": True}]


def test_trigger_reports_a_failing_status_call(dd) -> None:
    events = events_of(trigger_for("no-such-import"))
    assert len(events) == 1 and events[0]["status"] is None
    assert "DotdigitalError" in events[0]["error"] or "Error" in events[0]["error"]


def resume(op: DotdigitalExportContactsOperator, context: dict, deferred: TaskDeferred) -> Any:
    """Run the deferred trigger as the triggerer would and resume the task with its event."""
    assert deferred.method_name == "execute_complete"
    (event,) = events_of(deferred.trigger)
    return getattr(op, deferred.method_name)(context, event)


def run_deferrable(run_id: str, lytics: LyticsSandbox, version: int) -> tuple[dict, int]:
    """scan -> deliver (deferring on every bulk-job wait, resumed from the trigger) -> report."""
    lytics.set_version(AUDIENCE, version)
    context = make_context(run_id=run_id, params={"dry_run": False, "full_refresh": False})
    run_task(LyticsAudienceScanOperator(task_id="scan", audience=AUDIENCE, job_id="dd_defer"), context)
    op = DotdigitalExportContactsOperator(
        task_id="deliver", job_id="dd_defer", create_address_book=True, poll_interval=0.01, deferrable=True
    )
    deferrals = 0
    call = lambda: op.execute(context)  # noqa: E731
    while True:
        try:
            result = call()
            break
        except TaskDeferred as deferred:
            deferrals += 1
            call = lambda d=deferred: resume(op, context, d)  # noqa: E731
    context["ti"].xcoms["deliver"] = result
    run_task(LyticsCommitRunOperator(task_id="report", job_id="dd_defer"), context)
    return result, deferrals


def test_deferrable_export_defers_while_the_bulk_jobs_run_and_resumes(lytics, dd) -> None:
    first, deferrals = run_deferrable("r1", lytics, 0)
    book = dd.book_by_name("Lytics newsletter")
    assert book is not None
    valid = {r["email"] for r in lytics.expected_members(AUDIENCE) if "@" in r["email"]}
    assert deferrals == 1 and set(dd.members(book.id)) == valid
    assert dd.calls_to(IMPORT_ROUTE) == 1  # the resumed task reconnected, it did not import again
    assert first["outcomes"]["add:Subscribed"] == len(valid)
    second, deferrals = run_deferrable("r2", lytics, 1)
    after = {r["email"] for r in lytics.expected_members(AUDIENCE) if "@" in r["email"]}
    assert deferrals == 2  # the import of the enters, then the removal of the exits
    assert set(dd.members(book.id)) == after
    assert dd.calls_to(IMPORT_ROUTE) == 2 and dd.calls_to(DELETE_ROUTE) == 1
    assert second["outcomes"]["remove:Removed"] == len(valid - after) > 0


def test_timed_out_deferred_wait_fails_the_task_for_a_retry(dd) -> None:
    op = DotdigitalExportContactsOperator(task_id="deliver", job_id="dd_defer", deferrable=True, timeout=60)
    with pytest.raises(DotdigitalImportError, match="still 'NotFinished' after 60s; a retry reconnects"):
        op.execute_complete(make_context(), {"job_id": "i-1", "status": "NotFinished", "timed_out": True})


def test_job_config_deferrable_reaches_the_operator() -> None:
    from airflow.configuration import conf
    from airflow.sdk import DAG

    from lytics_provider.jobs.context import JobContext

    def deliver(**options: Any) -> Any:
        job = DotdigitalExportContactsJob(type="dotdigital_export_contacts", audience="a", **options)
        with DAG("job", schedule=None) as dag:
            job.add_tasks(JobContext(dag=dag, job_id="job", source=Path("job.yaml")))
        return dag.get_task("deliver")

    assert deliver(deferrable=True).deferrable is True
    assert deliver(poll_interval=7).options.poll_interval == 7
    # unset: Airflow's [operators] default_deferrable applies
    assert deliver().deferrable is conf.getboolean("operators", "default_deferrable", fallback=False)
