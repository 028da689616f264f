"""Amazon SQS "Export Activity Data": audience enter / exit / change events as queue messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lytics_provider.hooks.sqs import LyticsSqsHook, SqsEventDestination
from lytics_provider.sync.aws_events import AwsEventOperator
from lytics_provider.sync.operator import SyncRunInputs


class SqsAudienceTriggersOperator(AwsEventOperator):
    """Send one message per audience event to an SQS queue (SendMessageBatch, 10 a call).

    Only messages SQS failed are sent again; those refused for the sender's sake become rejects.
    On a FIFO queue the event id is the ``MessageDeduplicationId`` and the member's key the
    ``MessageGroupId``.

    :param sqs_queue: the queue's name or URL (a FIFO queue's ends in ``.fifo``).
    :param kwargs: :class:`~lytics_provider.sync.aws_events.AwsEventOperator`'s arguments.
    """

    hook_class = LyticsSqsHook
    template_fields: Sequence[str] = ("sqs_queue",)

    def __init__(self, *, sqs_queue: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sqs_queue = sqs_queue

    def make_destination(self, inputs: SyncRunInputs) -> SqsEventDestination:
        hook = self.hook()
        return SqsEventDestination(
            hook=hook, queue_url=hook.queue_url(self.sqs_queue), **self.event_arguments(inputs)
        )
