"""Amazon Kinesis "Export Audience Triggers": audience enter / exit / change events as stream records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lytics_provider.hooks.kinesis import KinesisEventDestination, LyticsKinesisHook
from lytics_provider.sync.aws_events import AwsEventOperator
from lytics_provider.sync.operator import SyncRunInputs


class KinesisAudienceTriggersOperator(AwsEventOperator):
    """Put one record per audience event into a Kinesis data stream (PutRecords, 500 a call).

    Only records Kinesis failed are sent again (throttled ones after a growing delay); each
    record carries its event's deterministic ``event_id`` and is partitioned by the member's key.

    :param stream_name: Stream Name: the Kinesis stream written to (letters, digits, ``_ . -``).
    :param kwargs: :class:`~lytics_provider.sync.aws_events.AwsEventOperator`'s arguments.
    """

    hook_class = LyticsKinesisHook
    template_fields: Sequence[str] = ("stream_name",)

    def __init__(self, *, stream_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.stream_name = stream_name

    def make_destination(self, inputs: SyncRunInputs) -> KinesisEventDestination:
        return KinesisEventDestination(
            hook=self.hook(), stream_name=self.stream_name, **self.event_arguments(inputs)
        )
