"""BigQuery load jobs that replace (or append to) a table from staged GCS files, waited for in the
worker or the triggerer.

Every load job has a deterministic id, ``lytics_<job>_<table>_<run stamp>``, and ``..._try<n>``
when try ``n`` replaces a failed one. Before staging a load, the operator looks those ids up: a
job an earlier try started (running or done) is reattached to and waited for, never loaded twice;
only a failed job is loaded again, under the next id. All loads of a run are submitted first,
then waited for in order. With ``deferrable`` the wait runs in Airflow's triggerer through the
official Google provider's :class:`~airflow.providers.google.cloud.triggers.bigquery.BigQueryInsertJobTrigger`
(the trigger ``BigQueryInsertJobOperator`` uses), one job at a time; the task resumes in
:meth:`BigQueryLoadJobs.execute_complete` with the loads and the report in the deferral's
arguments, so it needs no local file and may resume on any worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk import Context

from lytics_provider.pipeline.warehouse_types import sanitize_name

if TYPE_CHECKING:
    from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook

DEFAULT_POLL_INTERVAL = 4.0  # seconds, as BigQueryInsertJobOperator


class BigQueryLoadError(RuntimeError):
    """A load job finished with an error (a retry loads again under the next job id)."""


@dataclass(frozen=True)
class LoadSpec:
    """One table to replace from staged files.

    :param table: the table in the operator's dataset.
    :param source_uris: ``gs://`` URIs of the staged files.
    :param source_format: ``CSV`` or ``NEWLINE_DELIMITED_JSON``.
    :param schema: BigQuery schema fields; ``None`` auto-detects (JSON only).
    :param job_key: the run-stable part of the job id (job, table, run stamp).
    :param write_disposition: ``WRITE_TRUNCATE`` (replace the table) or ``WRITE_APPEND`` (add the
        rows; an auto-detected schema may gain columns).
    """

    table: str
    source_uris: Sequence[str]
    source_format: str
    schema: Sequence[dict[str, str]] | None
    job_key: str
    write_disposition: str = "WRITE_TRUNCATE"


def load_configuration(project: str, dataset: str, spec: LoadSpec) -> dict[str, Any]:
    """The ``load`` job configuration: replace (or append to) ``project.dataset.table``."""
    load: dict[str, Any] = {
        "sourceUris": list(spec.source_uris),
        "destinationTable": {"projectId": project, "datasetId": dataset, "tableId": spec.table},
        "sourceFormat": spec.source_format,
        "writeDisposition": spec.write_disposition,
        "createDisposition": "CREATE_IF_NEEDED",
    }
    if spec.source_format == "CSV":
        load.update(skipLeadingRows=1, allowQuotedNewlines=True, schema={"fields": list(spec.schema or [])})
    elif spec.schema:
        load["schema"] = {"fields": list(spec.schema)}
    else:
        load["autodetect"] = True
    if spec.write_disposition == "WRITE_APPEND":
        load["schemaUpdateOptions"] = ["ALLOW_FIELD_ADDITION"]
    return {"load": load}


def load_job_ids(job_key: str, try_number: int) -> list[str]:
    """The ids a load may have up to try ``try_number``: the first try's, then ``_try<n>``."""
    first = sanitize_name(f"lytics_{job_key}", "bigquery")
    return [first] + [f"{first}_try{n}" for n in range(2, max(1, try_number) + 1)]


class BigQueryLoadJobs:
    """Operator mixin: submit, reattach to and wait for BigQuery load jobs.

    The operator sets ``gcp_conn_id``, ``location``, ``project``, ``dataset``, ``deferrable`` and
    ``poll_interval`` (its ``__init__`` arguments), calls :meth:`start_load` per table, then
    returns :meth:`wait_for_loads`.
    """

    gcp_conn_id: str
    location: str | None
    project: str | None
    dataset: str
    deferrable: bool
    poll_interval: float
    log: Any

    def bigquery_hook(self) -> BigQueryHook:
        """The official hook on the operator's connection and location."""
        from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook

        return BigQueryHook(gcp_conn_id=self.gcp_conn_id, location=self.location, use_legacy_sql=False)

    def ensure_dataset(self, hook: BigQueryHook) -> None:
        """Create the operator's dataset when it does not exist."""
        hook.create_empty_dataset(
            dataset_id=self.dataset, project_id=self._project(hook), location=self.location, exists_ok=True
        )

    def existing_load(self, hook: BigQueryHook, spec: LoadSpec, try_number: int) -> tuple[str, Any]:
        """``(job id to use, the earlier try's job or None)`` for ``spec``.

        The latest load job an earlier try started is reattached to (its id, the job) when it is
        running or succeeded; when there is none, or it failed, this try's id and ``None``.
        """
        from google.api_core.exceptions import NotFound

        ids = load_job_ids(spec.job_key, try_number)
        for job_id in reversed(ids):
            try:
                job = hook.get_job(job_id=job_id, project_id=self._project(hook), location=self.location)
            except NotFound:
                continue
            if job.state == "DONE" and job.error_result:
                self.log.info(
                    "Load job %s failed (%s); loading again as %s", job_id, job.error_result, ids[-1]
                )
                return ids[-1], None
            self.log.info("Load job %s exists (an earlier try, %s): reattaching to it", job_id, job.state)
            return job_id, job
        return ids[-1], None

    def start_load(self, hook: BigQueryHook, spec: LoadSpec, job_id: str) -> None:
        """Submit the load job ``job_id`` without waiting (an existing one with that id is kept)."""
        from google.api_core.exceptions import Conflict

        project = self._project(hook)
        try:
            hook.insert_job(
                configuration=load_configuration(project, self.dataset, spec),
                job_id=job_id,
                project_id=project,
                location=self.location,
                nowait=True,
            )
        except Conflict:
            self.log.info("Load job %s already exists: waiting for it", job_id)
            return
        self.log.info(
            "Started load job %s: %s into %s.%s", job_id, spec.source_uris, self.dataset, spec.table
        )

    def wait_for_loads(
        self, context: Context, loads: list[dict[str, Any]], result: dict[str, Any]
    ) -> dict[str, Any]:
        """Wait for every load (``{"job_id", "table", "staged"}``) in order, then remove the staged files.

        A running job defers to the triggerer when ``deferrable``, else is waited for here.

        :return: ``result``, once every load succeeded.
        """
        hook = self.bigquery_hook()
        project = self._project(hook)
        for load in loads:
            job = hook.get_job(job_id=load["job_id"], project_id=project, location=self.location)
            if job.state != "DONE":
                if self.deferrable:
                    self._defer_to(hook, load, loads, result)
                self.log.info("Waiting for load job %s", load["job_id"])
                job.result()
            if job.error_result:
                raise BigQueryLoadError(self._failure(load, job.error_result))
            self.log.info("Loaded %s.%s (job %s)", self.dataset, load["table"], load["job_id"])
        self._remove_staged(loads)
        return result

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any],
        loads: list[dict[str, Any]] | None = None,
        result: dict[str, Any] | None = None,
        waiting_for: str | None = None,
    ) -> dict[str, Any]:
        """Resume after the trigger's event: fail on an error, else wait for the remaining loads."""
        if event.get("status") != "success":
            load = next((x for x in loads or [] if x["job_id"] == waiting_for), {"job_id": waiting_for})
            raise BigQueryLoadError(self._failure(load, event.get("message")))
        self.log.info("Load job %s finished (waited in the triggerer)", event.get("job_id"))
        return self.wait_for_loads(context, list(loads or []), dict(result or {}))

    # -- internals ------------------------------------------------------------------------------
    def _project(self, hook: BigQueryHook) -> str:
        return str(self.project or hook.project_id)

    def _failure(self, load: dict[str, Any], error: Any) -> str:
        table = f"{self.dataset}.{load.get('table', '?')}"
        return f"BigQuery load job {load['job_id']} into {table} failed: {error}; a retry loads again"

    def _defer_to(
        self, hook: BigQueryHook, load: dict[str, Any], loads: list[dict[str, Any]], result: dict[str, Any]
    ) -> None:
        from airflow.providers.google.cloud.triggers.bigquery import BigQueryInsertJobTrigger

        self.log.info("Load job %s is running; deferring the wait to the triggerer", load["job_id"])
        self.defer(  # type: ignore[attr-defined]
            trigger=BigQueryInsertJobTrigger(
                conn_id=self.gcp_conn_id,
                job_id=load["job_id"],
                project_id=self._project(hook),
                location=self.location or hook.location,
                poll_interval=self.poll_interval,
                cancel_on_kill=False,  # a triggerer restart or a retry must find the job still loading
            ),
            method_name="execute_complete",
            kwargs={"loads": loads, "result": result, "waiting_for": load["job_id"]},
        )

    def _remove_staged(self, loads: list[dict[str, Any]]) -> None:
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        uris = [uri for load in loads for uri in load.get("staged", [])]
        if not uris:
            return
        gcs = GCSHook(gcp_conn_id=self.gcp_conn_id)
        for uri in uris:
            bucket, key = uri.removeprefix("gs://").split("/", 1)
            gcs.delete(bucket, key, ignore_error=True)  # an earlier try may have removed it
