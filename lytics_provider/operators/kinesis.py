"""Amazon Kinesis "Export Audience Triggers": audience enter / exit / change events as stream records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lytics_provider.hooks.kinesis import KinesisEventDestination, LyticsKinesisHook
from lytics_provider.sync.event_batches import Backoff
from lytics_provider.sync.events_operator import AudienceEventsOperator
from lytics_provider.sync.operator import SyncRunInputs


class KinesisAudienceTriggersOperator(AudienceEventsOperator):
    """Put one record per audience event into a Kinesis data stream (PutRecords, 500 a call).

    Only records Kinesis failed are sent again (throttled ones after a growing delay); each
    record carries its event's deterministic ``event_id`` and is partitioned by the member's key.

    :param stream_name: Stream Name: the Kinesis stream written to (letters, digits, ``_ . -``).
    :param aws_conn_id: the Airflow ``aws`` connection (keys, role, region, endpoint).
    :param resend_attempts: rounds of sending a batch's failed records before the task fails (its
        retry resumes after the last acknowledged batch).
    """

    #: seconds before the first resend of failed entries (the delay doubles each round, with jitter)
    backoff_base: float = 0.1
    template_fields: Sequence[str] = ("stream_name",)

    def __init__(
        self,
        *,
        stream_name: str,
        aws_conn_id: str | None = "aws_default",
        resend_attempts: int = 8,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if resend_attempts < 1:
            raise ValueError(f"resend_attempts {resend_attempts!r} must be 1 or more")
        self.stream_name = stream_name
        self.aws_conn_id = aws_conn_id
        self.resend_attempts = resend_attempts

    def hook(self) -> LyticsKinesisHook:
        return LyticsKinesisHook(
            aws_conn_id=self.aws_conn_id,
            backoff=Backoff(attempts=self.resend_attempts, base=self.backoff_base),
        )

    def event_destination(self, options: dict[str, Any], inputs: SyncRunInputs) -> KinesisEventDestination:
        return KinesisEventDestination(hook=self.hook(), stream_name=self.stream_name, **options)
