"""Amazon SQS "Export Activity Data": audience enter / exit / change events as queue messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lytics_provider.hooks.sqs import LyticsSqsHook, SqsEventDestination
from lytics_provider.sync.event_batches import Backoff
from lytics_provider.sync.events_operator import AudienceEventsOperator
from lytics_provider.sync.operator import SyncRunInputs


class SqsAudienceTriggersOperator(AudienceEventsOperator):
    """Send one message per audience event to an SQS queue (SendMessageBatch, 10 a call).

    Only messages SQS failed are sent again; those refused for the sender's sake become rejects.
    On a FIFO queue the event id is the ``MessageDeduplicationId`` and the member's key the
    ``MessageGroupId``.

    :param queue: the queue's name or URL (a FIFO queue's ends in ``.fifo``).
    :param aws_conn_id: the Airflow ``aws`` connection (keys, role, region, endpoint).
    :param resend_attempts: rounds of sending a batch's failed messages before the task fails (its
        retry resumes after the last acknowledged batch).
    """

    #: seconds before the first resend of failed entries (the delay doubles each round, with jitter)
    backoff_base: float = 0.1
    template_fields: Sequence[str] = ("queue",)

    def __init__(
        self,
        *,
        queue: str,
        aws_conn_id: str | None = "aws_default",
        resend_attempts: int = 8,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if resend_attempts < 1:
            raise ValueError(f"resend_attempts {resend_attempts!r} must be 1 or more")
        self.queue = queue
        self.aws_conn_id = aws_conn_id
        self.resend_attempts = resend_attempts

    def hook(self) -> LyticsSqsHook:
        return LyticsSqsHook(
            aws_conn_id=self.aws_conn_id,
            backoff=Backoff(attempts=self.resend_attempts, base=self.backoff_base),
        )

    def event_destination(self, options: dict[str, Any], inputs: SyncRunInputs) -> SqsEventDestination:
        hook = self.hook()
        return SqsEventDestination(hook=hook, queue_url=hook.queue_url(self.queue), **options)
