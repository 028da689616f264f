"""Amazon Kinesis job types: Export Audience Triggers (events to a data stream) and Import Activity
Data (a data stream's records into a Lytics stream). Operators are imported inside ``add_tasks``."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from lytics_provider.jobs.base import JobConfig
from lytics_provider.jobs.event_fields import ExportedEventFields
from lytics_provider.jobs.fields import connection_field
from lytics_provider.jobs.one_task import OneTaskJob

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext

STREAM_NAME = r"^[A-Za-z0-9_.-]{1,128}$"
STREAM_NAME_TEXT = (
    "Stream Name: the Kinesis stream; any alphanumeric string plus underscores, periods or dashes, "
    "e.g. lytics_triggers_stream."
)
_LYTICS_STREAM = r"^[A-Za-z0-9_.-]+$"


class _KinesisConnection(JobConfig):
    aws_conn_id: str = connection_field("aws_default", "Airflow AWS connection (keys or role, region).")
    stream_name: str = Field(pattern=STREAM_NAME, description=STREAM_NAME_TEXT)


class KinesisExportTriggersJob(ExportedEventFields, _KinesisConnection):
    """Amazon Kinesis Export Audience Triggers: one record per enter / exit / change event."""

    type: Literal["kinesis_export_audience_triggers"]
    resend_attempts: int = Field(
        default=8,
        ge=1,
        le=20,
        description="Rounds of sending the records Kinesis failed (throttled) before the task fails and its "
        "retry resumes.",
    )

    def add_tasks(self, job: JobContext) -> None:
        """``scan`` -> ``deliver`` -> ``report``."""
        from lytics_provider.operators.kinesis import KinesisAudienceTriggersOperator

        self.add_event_tasks(job, KinesisAudienceTriggersOperator)


# A dry run reads the records and sends nothing; the checkpoint stays.
class KinesisImportJob(OneTaskJob, _KinesisConnection):
    """Amazon Kinesis Import Activity Data: every field of each record into a Lytics stream."""

    type: Literal["kinesis_import_activity_data"]
    task_operator: ClassVar[str] = "lytics_provider.transfers.kinesis_to_lytics.KinesisToLyticsOperator"
    stream: str = Field(
        min_length=1, pattern=_LYTICS_STREAM, description="The Lytics stream the records are posted to."
    )
    starting_position: Literal["TRIM_HORIZON", "LATEST"] = Field(
        default="TRIM_HORIZON",
        description="Where the first run starts: TRIM_HORIZON (the oldest record kept) or LATEST (records "
        "arriving after it); later runs go on from the checkpoint.",
    )
    timestamp_field: str | None = Field(default=None, description="Record field holding the event time.")
    batch_size: int = Field(default=1000, ge=1, le=10_000, description="Records per Lytics collect request.")
    max_records_per_run: int | None = Field(
        default=None, ge=1, description="Read at most this many records of each shard per run (default: all)."
    )
