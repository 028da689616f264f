"""Send a scanned Lytics audience's enters and exits to Segment as Identify or Track calls ("Export").

The ``deliver`` task of the export DAG (``scan`` -> ``deliver`` -> ``report``). Each member who
entered gets an Identify call with the trait ``audience_{audience_name}: true`` (or a Track call
with ``event: "enter"``), each member who left one with ``false`` (``event: "exit"``); the other
exported fields go in ``traits`` (Identify) or ``properties`` (Track). The event id is the call's
``messageId``, the same on a retry, and Segment de-duplicates on it. Checkpoints per acknowledged
``/v1/batch`` request, rejects and the run report come from the sync engine.
"""

from __future__ import annotations

from typing import Any

from lytics_provider.hooks.segment import CallType, SegmentBatchHook, SegmentDestination
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.sync.event_operator import AudienceEventOperator
from lytics_provider.sync.operator import SyncRunInputs


class LyticsToSegmentOperator(AudienceEventOperator):
    """Audience enters and exits as Segment Identify or Track calls.

    :param segment_conn_id: the ``segment`` connection (extra ``write_key``).
    :param call_type: ``identify`` (trait ``audience_{audience_name}``) or ``track`` (``enter`` / ``exit``).
    :param user_id_field: the member field sent as ``userId``.
    :param anonymous_id_field: the member field sent as ``anonymousId`` when ``userId`` is empty.
    :param kwargs: :class:`~lytics_provider.sync.event_operator.AudienceEventOperator`'s arguments.
    """

    def __init__(
        self,
        *,
        segment_conn_id: str = "segment_default",
        call_type: CallType = "identify",
        user_id_field: str = "_uid",
        anonymous_id_field: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())

    def make_destination(self, inputs: SyncRunInputs) -> SegmentDestination:
        return SegmentDestination(
            hook=SegmentBatchHook(self.segment_conn_id),
            call_type=self.call_type,
            audience_name=self.audience_name(inputs),
            user_id_field=self.user_id_field,
            anonymous_id_field=self.anonymous_id_field,
            **self.event_arguments(inputs),
        )
