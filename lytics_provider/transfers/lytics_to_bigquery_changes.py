"""Export Audience Changes to BigQuery: each run's enters and exits appended to one table.

The ``deliver`` task of ``scan`` -> ``deliver`` -> ``report``: the sync engine's diff of the
audience against the committed baseline gives the enter and exit events
(:class:`~lytics_provider.sync.events.EventDestination`); each batch becomes one CSV of
``email`` (the ID Field's value), ``segment_slug``, ``timestamp`` and ``exit``, staged on GCS and
appended by a load job (``WRITE_APPEND``; the dataset and table are created when missing).

A batch is acknowledged, and checkpointed by the sync engine, only once its load job succeeded.
The load job's id is made of the job, the table and the batch's event ids (themselves fixed by job,
run, member and kind), so a retried batch reattaches to the load job an earlier try started
instead of appending its rows again; a failed load job appends nothing and the retry loads the
batch under the next id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import Context

from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.pipeline.bigquery_loads import DEFAULT_POLL_INTERVAL, BigQueryLoadJobs, LoadSpec
from lytics_provider.pipeline.object_files import join_key
from lytics_provider.pipeline.warehouse_types import sanitize_name
from lytics_provider.pipeline.writers import CsvWriter
from lytics_provider.sync.event_operator import FailFastEventOperator
from lytics_provider.sync.events import AudienceEvent, EventDestination
from lytics_provider.sync.identifiers import lookup_field, scalar_text
from lytics_provider.sync.operator import SyncRunInputs

if TYPE_CHECKING:
    from airflow.providers.google.cloud.hooks.bigquery import BigQueryHook

CHANGES_SCHEMA = [
    {"name": "email", "type": "STRING", "mode": "NULLABLE"},
    {"name": "segment_slug", "type": "STRING", "mode": "REQUIRED"},
    {"name": "timestamp", "type": "TIMESTAMP", "mode": "REQUIRED"},
    {"name": "exit", "type": "BOOL", "mode": "REQUIRED"},
]


class BigQueryChangesDestination(EventDestination):
    """Enter and exit events as rows appended to ``dataset.table``, one load job per batch.

    :param operator: the ``deliver`` operator (its BigQuery load jobs and options).
    :param hook: the BigQuery hook.
    :param folder: the run folder (batches are staged under ``changes/``).
    :param kwargs: :class:`~lytics_provider.sync.events.EventDestination`'s arguments.
    """

    def __init__(
        self,
        *,
        operator: LyticsToBigQueryAudienceChangesOperator,
        hook: BigQueryHook,
        folder: Path,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.operator, self.hook, self.folder = operator, hook, folder

    def identify(self, record: dict[str, Any]) -> tuple[str, str | None]:
        return scalar_text(lookup_field(record, self.operator.id_field)).strip(), None

    def invalid_reason(self, ident: str, record: dict[str, Any]) -> str | None:
        return None if ident else f"the member has no {self.operator.id_field} (the ID Field)"

    def send_events(self, events: list[AudienceEvent]) -> Mapping[str, str | None] | None:
        op = self.operator
        digest = hashlib.sha256("\n".join(e.id for e in events).encode()).hexdigest()[:16]
        staged = self.folder / "changes" / f"changes_{digest}.csv"
        staged.parent.mkdir(parents=True, exist_ok=True)
        with open(staged, "wb") as handle, CsvWriter(handle, [f["name"] for f in CHANGES_SCHEMA]) as writer:
            for event in events:
                exited = "true" if event.kind == "exit" else "false"
                writer.write_cells([event.ident, event.audience, event.time, exited])
        key = join_key(op.gcs_directory, f"{op.job_id}/changes/{staged.name}")
        uri = f"gs://{op.gcs_bucket}/{key}"
        table = op.table_name()
        spec = LoadSpec(table, [uri], "CSV", CHANGES_SCHEMA, f"{op.job_id}_{table}_{digest}", "WRITE_APPEND")
        job_id, earlier = op.existing_load(self.hook, spec, op.try_number)
        if earlier is None:
            from airflow.providers.google.cloud.hooks.gcs import GCSHook

            GCSHook(gcp_conn_id=op.gcp_conn_id).upload(op.gcs_bucket, key, filename=str(staged))
            op.start_load(self.hook, spec, job_id)
        staged.unlink()
        op.wait_for_loads({}, [{"job_id": job_id, "table": table, "staged": [uri]}], {})
        return None


class LyticsToBigQueryAudienceChangesOperator(BigQueryLoadJobs, FailFastEventOperator):
    """Append the run's audience enters and exits to ``{project}.{dataset}.{table}``.

    :param dataset: BigQuery Dataset (created if missing).
    :param gcs_bucket: GCS bucket for the staged CSV files.
    :param project: BigQuery Project (default: the connection's).
    :param table: the table (created if missing; default ``audience_changes``).
    :param id_field: ID Field: the member field written in the ``email`` column.
    :param gcs_directory: prefix of the staged files.
    :param location: BigQuery location.
    :param gcp_conn_id: Google Cloud connection.
    :param kwargs: :class:`~lytics_provider.sync.event_operator.AudienceEventOperator`'s arguments
        (``batch_size``: rows per load job).
    """

    template_fields = ("dataset", "table", "gcs_bucket")
    default_batch_size = 10_000

    def __init__(
        self,
        *,
        dataset: str,
        gcs_bucket: str,
        project: str | None = None,
        table: str = "audience_changes",
        id_field: str = "email",
        gcs_directory: str = "lytics",
        location: str | None = None,
        gcp_conn_id: str = "google_cloud_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        self.deferrable = False  # a batch is acknowledged only after its load job, in the sync loop
        self.poll_interval = DEFAULT_POLL_INTERVAL
        self.try_number = 1

    def execute(self, context: Context) -> dict[str, Any]:
        self.try_number = int(getattr(context.get("ti"), "try_number", 1) or 1)
        report = super().execute(context)
        report.update(dataset=self.dataset, table=self.table_name())
        return report

    def table_name(self) -> str:
        """The table, sanitised for BigQuery."""
        return sanitize_name(self.table, "bigquery")

    def make_destination(self, inputs: SyncRunInputs) -> BigQueryChangesDestination:
        hook = self.bigquery_hook()
        if not inputs.dry_run:
            self.ensure_dataset(hook)
        return BigQueryChangesDestination(
            operator=self,
            hook=hook,
            folder=inputs.folder,
            **self.event_arguments(inputs),
        )
