"""Amazon SQS job type: Export Activity Data (audience enter / exit triggers as queue messages).
The operator is imported inside ``add_tasks``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from lytics_provider.jobs.event_fields import ExportedEventFields
from lytics_provider.jobs.fields import connection_field

if TYPE_CHECKING:
    from lytics_provider.jobs.context import JobContext


class SqsExportJob(ExportedEventFields):
    """Amazon SQS Export Activity Data: one message per enter / exit / change event."""

    type: Literal["sqs_export_activity_data"]
    aws_conn_id: str = connection_field("aws_default", "Airflow AWS connection (keys or role, region).")
    sqs_queue: str = Field(
        min_length=1,
        description="The queue's name or URL; a FIFO queue (name ending .fifo) de-duplicates resent events.",
    )
    resend_attempts: int = Field(
        default=8,
        ge=1,
        le=20,
        description="Rounds of sending the messages SQS failed before the task fails and its retry resumes.",
    )

    @field_validator("sqs_queue")
    @classmethod
    def _queue_name(cls, value: str) -> str:
        name = value.rstrip("/").rsplit("/", 1)[-1]
        if not name or len(name) > 80 or not all(c.isalnum() or c in "-_." for c in name):
            raise ValueError(
                f"sqs_queue {value!r}: a queue name is 1-80 letters, digits, '-' or '_' (FIFO queues end in "
                "'.fifo'); give the name or the queue URL"
            )
        return value

    def add_tasks(self, job: JobContext) -> None:
        """``scan`` -> ``deliver`` -> ``report``."""
        from lytics_provider.operators.sqs import SqsAudienceTriggersOperator

        self.add_event_tasks(job, SqsAudienceTriggersOperator)
