"""Google Cloud Pub/Sub job types: Export Audience, Export Stream and Import Events.

They use Airflow's ``google_cloud_platform`` connection (the service-account key JSON and the
project), as every Google job of this provider does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from lytics_provider.jobs.base import JobConfig, StrictModel
from lytics_provider.jobs.event_fields import BatchedEventFields
from lytics_provider.jobs.fields import connection_field
from lytics_provider.jobs.one_task import OneTaskJob

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext

_RESOURCE_ID = r"^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$"
_RESOURCE_HINT = "3-255 characters, starting with a letter: letters, digits and - _ . ~ + %"


class _PubSubFields(StrictModel):
    gcp_conn_id: str = connection_field(
        "google_cloud_default", "Google Cloud connection (service account JWT JSON key and project)."
    )
    project_id: str | None = Field(
        default=None, description="Google Cloud project of the topic; default the connection's project."
    )
    topic: str = Field(pattern=_RESOURCE_ID, description=f"Pub/Sub topic id ({_RESOURCE_HINT}).")
    retry_seconds: float = Field(
        default=60.0,
        gt=0,
        le=600,
        description="How long a transient Pub/Sub failure (unavailable, throttled) is retried before the "
        "task fails; a task retry resumes after the last acknowledged batch.",
    )


class _CreateTopic(StrictModel):
    create_topic: bool = Field(
        default=False,
        description="Create the topic automatically when it does not exist (otherwise the job needs an "
        "existing topic and fails at once without one).",
    )


class PubSubExportAudienceJob(BatchedEventFields, _CreateTopic, _PubSubFields):
    """Export Audience: enter / exit events of an audience to a Pub/Sub topic (data = the user fields)."""

    type: Literal["pubsub_export_audience"]

    def add_tasks(self, job: JobContext) -> None:
        """``scan`` -> ``deliver`` -> ``report``."""
        from lytics_provider.operators.pubsub import PubSubExportAudienceOperator

        self.add_event_tasks(job, PubSubExportAudienceOperator)


class PubSubExportStreamJob(OneTaskJob, _CreateTopic, _PubSubFields, JobConfig):
    """Export Stream: new events of a Lytics stream to a Pub/Sub topic (every field of the stream)."""

    type: Literal["pubsub_export_stream"]
    task_operator: ClassVar[str] = "lytics_provider.operators.pubsub.PubSubExportStreamOperator"
    task_id: ClassVar[str] = "export"
    stream: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="Lytics stream to export.")
    batch_size: int = Field(default=100, ge=1, le=1000, description="Events per Publish call.")


class PubSubImportEventsJob(OneTaskJob, _PubSubFields, JobConfig):
    """Import Events: JSON messages of a Pub/Sub subscription into a Lytics stream."""

    type: Literal["pubsub_import_events"]
    task_operator: ClassVar[str] = "lytics_provider.operators.pubsub.PubSubImportEventsOperator"
    stream: str = Field(
        min_length=1,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Lytics stream (new or existing) the events go to.",
    )
    subscription: str | None = Field(
        default=None,
        pattern=_RESOURCE_ID,
        description="Subscription the job reads, created on the topic when missing; default lytics-<job id>.",
    )
    timestamp_field: str | None = Field(default=None, description="Message field holding the event time.")
    batch_size: int = Field(default=500, ge=1, le=1000, description="Messages per pull and per Lytics call.")
    max_messages: int = Field(
        default=100_000, ge=1, description="Messages one run imports at most; the rest wait for the next run."
    )
    ack_deadline_secs: int = Field(
        default=60, ge=10, le=600, description="Ack deadline of the subscription the job creates (seconds)."
    )
