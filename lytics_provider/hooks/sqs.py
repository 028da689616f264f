"""Amazon SQS: audience events as queue messages (SendMessageBatch).

:class:`LyticsSqsHook` extends the official ``SqsHook`` (a boto3 ``sqs`` client on an Airflow
``aws`` connection; it has no batch send) with SendMessageBatch: at most 10 messages a call and
256 KiB a message and a call, body and message attributes counted together. SQS answers per
message (``Successful`` / ``Failed`` with ``Id``, ``Code``, ``SenderFault``); only the failed
messages are sent again, those the service failed (``SenderFault`` false, or throttling) after a
growing delay, while those refused for the sender's sake become rejects with SQS' code and message
(https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html).

:class:`SqsEventDestination` is the audience-events adapter: one message per event, the JSON of
:func:`~lytics_provider.sync.event_body.event_document` with ``event_id``, ``event_type``,
``audience`` and ``event_time`` as message attributes. On a FIFO queue (name ending ``.fifo``)
the event id is the ``MessageDeduplicationId``, so a batch a retried task sends again within
SQS' five-minute de-duplication interval is not delivered twice, and ``MessageGroupId`` is the
member's key, so one member's events keep their order.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from airflow.providers.amazon.aws.hooks.sqs import SqsHook

from lytics_provider.sync.event_acks import AcknowledgedEventDestination
from lytics_provider.sync.event_batches import (
    BatchLimits,
    Entry,
    EntryFailure,
    ResendingHookMixin,
)
from lytics_provider.sync.event_body import encode_message, event_attributes
from lytics_provider.sync.events import AudienceEvent

MAX_MESSAGES = 10
MAX_MESSAGE_BYTES = 256 * 1024
SQS_LIMITS = BatchLimits(MAX_MESSAGES, MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES)
#: per-message codes that are the service's passing trouble even when marked as the sender's fault
THROTTLING_CODES = frozenset(
    {"ThrottlingException", "RequestThrottled", "KmsThrottled", "KMS.ThrottlingException"}
)
_GROUP_ID = re.compile(r"^[!-~]{1,128}$")


def is_fifo(queue: str) -> bool:
    """A FIFO queue's name (the last part of its URL) ends in ``.fifo``."""
    return queue.rstrip("/").endswith(".fifo")


def message_group_id(member_key: str) -> str:
    """The member's key, or its SHA-256 when it is not 1-128 printable ASCII characters."""
    if _GROUP_ID.match(member_key):
        return member_key
    return hashlib.sha256(member_key.encode()).hexdigest()


def _attribute(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


class LyticsSqsHook(ResendingHookMixin, SqsHook):
    """``SqsHook`` plus SendMessageBatch that resends only the failed messages.

    :param aws_conn_id: the Airflow ``aws`` connection.
    :param backoff: resend rounds and delays of failed messages.
    """

    def queue_url(self, queue: str) -> str:
        """The URL of ``queue`` (a URL is returned as it is; a name is looked up)."""
        if queue.startswith(("https://", "http://")):
            return queue
        return str(self.get_conn().get_queue_url(QueueName=queue)["QueueUrl"])

    def send_batch_call(self, queue_url: str, entries: list[Entry]) -> list[EntryFailure]:
        """One SendMessageBatch call; the messages it did not accept."""
        response = self.get_conn().send_message_batch(
            QueueUrl=queue_url, Entries=[{"Id": entry.key, **entry.body} for entry in entries]
        )
        failures = []
        for failed in response.get("Failed", []):
            code = failed.get("Code", "")
            passing = not failed.get("SenderFault", False) or code in THROTTLING_CODES
            failures.append(EntryFailure(failed["Id"], code, failed.get("Message", ""), passing))
        return failures

    def send_entries(self, queue_url: str, entries: list[Entry]) -> dict[str, str]:
        """Send messages 10 a call (256 KiB at most); resend only the failed ones.

        :param queue_url: the queue's URL.
        :param entries: each keyed by a batch-unique id (letters, digits, ``-``, ``_``; at most 80)
            with ``body`` the SendMessageBatch entry without ``Id``.
        :return: ``key -> reason`` of messages SQS refused for the sender's sake (or over 256 KiB).
        """
        return self.deliver(
            entries, lambda call: self.send_batch_call(queue_url, call), SQS_LIMITS, what="messages"
        )


class SqsEventDestination(AcknowledgedEventDestination):
    """Audience events as SQS messages (see the module docstring).

    :param hook: the SQS hook (its ``stats`` count calls and resends).
    :param queue_url: the queue's URL (``.fifo`` for a FIFO queue).
    """

    def __init__(self, *, hook: LyticsSqsHook, queue_url: str, **kwargs: Any) -> None:
        kwargs.setdefault("batch_size", MAX_MESSAGES)
        super().__init__(**kwargs)
        self.hook = hook
        self.queue_url = queue_url
        self.fifo = is_fifo(queue_url)

    def entry(self, event: AudienceEvent) -> Entry:
        body = encode_message(event).decode()
        attributes = {name: _attribute(value) for name, value in event_attributes(event).items() if value}
        size = len(body.encode()) + sum(
            len(name) + len(a["DataType"]) + len(a["StringValue"].encode()) for name, a in attributes.items()
        )
        message: dict[str, Any] = {"MessageBody": body, "MessageAttributes": attributes}
        if self.fifo:
            message["MessageDeduplicationId"] = event.id
            message["MessageGroupId"] = message_group_id(event.ident or event.uid)
        return Entry(event.id, size, message)

    def send_events(self, events: list[AudienceEvent]) -> Mapping[str, str | None]:
        return self.hook.send_entries(self.queue_url, [self.entry(e) for e in events])

    def describe(self) -> dict[str, Any]:
        return {"queue_url": self.queue_url, "fifo": self.fifo, "events": list(self.events)}

    def describe_after(self) -> dict[str, Any]:
        return {"sqs": self.hook.stats.as_dict()}
