"""The shared part of the Amazon event operators (Kinesis, SQS): the AWS connection and resends."""

from __future__ import annotations

from typing import Any, ClassVar

from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.sync.event_batches import Backoff
from lytics_provider.sync.event_operator import FailFastEventOperator


class AwsEventOperator(FailFastEventOperator):
    """Send audience events through an AWS batch API whose failed entries are resent.

    A missing stream or queue, or refused credentials, fail the task at once.

    :param aws_conn_id: the Airflow ``aws`` connection (keys, role, region, endpoint).
    :param resend_attempts: rounds of sending a batch's failed entries before the task fails (its
        retry resumes after the last acknowledged batch).
    :param kwargs: :class:`~lytics_provider.sync.event_operator.FailFastEventOperator`'s arguments.
    """

    #: the hook class, built with ``aws_conn_id`` and ``backoff``
    hook_class: ClassVar[type]
    #: seconds before the first resend of failed entries (the delay doubles each round, with jitter)
    backoff_base: float = 0.1
    #: one checkpoint per call the receiver acknowledges
    default_batch_size = None

    def __init__(
        self, *, aws_conn_id: str | None = "aws_default", resend_attempts: int = 8, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        if resend_attempts < 1:
            raise ValueError(f"resend_attempts {resend_attempts!r} must be 1 or more")

    def hook(self) -> Any:
        return self.hook_class(
            aws_conn_id=self.aws_conn_id,
            backoff=Backoff(attempts=self.resend_attempts, base=self.backoff_base),
        )
