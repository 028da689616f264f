"""Amazon Kinesis Data Streams: audience events out (PutRecords), activity records in (GetRecords).

:class:`LyticsKinesisHook` extends the official ``KinesisHook`` (a boto3 ``kinesis`` client on an
Airflow ``aws`` connection). PutRecords takes at most 500 records and 5 MiB a call, 1 MiB a
record (data plus partition key), and answers per record: ``FailedRecordCount`` and, for each
failed record, an ``ErrorCode``. Only the failed records are sent again; throttling
(``ProvisionedThroughputExceededException``) and ``InternalFailure`` are resent after a growing
delay, never rejected (https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html).

:class:`KinesisEventDestination` is the audience-events adapter: one record per event, the JSON of
:func:`~lytics_provider.sync.event_body.event_document` (its ``id`` lets consumers drop a record a
retried task sent twice), partitioned by the member's key so one member's events stay in
order on one shard.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from airflow.providers.amazon.aws.hooks.kinesis import KinesisHook
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.sync.event_acks import AcknowledgedEventDestination
from lytics_provider.sync.event_batches import (
    BatchLimits,
    Entry,
    EntryFailure,
    ResendingHookMixin,
)
from lytics_provider.sync.event_body import encode_message
from lytics_provider.sync.events import AudienceEvent

MAX_RECORDS = 500
MAX_REQUEST_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
MAX_PARTITION_KEY_CHARS = 256
#: per-record error codes a resend can get through
PASSING_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "InternalFailure", "KMSThrottlingException"}
)
#: per-record error codes that mean the stream's encryption key cannot be used (every record fails)
KEY_CODES = frozenset(
    {
        "KMSAccessDeniedException",
        "KMSDisabledException",
        "KMSInvalidStateException",
        "KMSNotFoundException",
        "KMSOptInRequired",
    }
)
KINESIS_LIMITS = BatchLimits(MAX_RECORDS, MAX_REQUEST_BYTES, MAX_RECORD_BYTES)


def partition_key(member_key: str) -> str:
    """The member's key, or its SHA-256 when longer than the 256 characters Kinesis allows."""
    if 0 < len(member_key) <= MAX_PARTITION_KEY_CHARS:
        return member_key
    return hashlib.sha256(member_key.encode()).hexdigest()


@dataclass(frozen=True)
class ShardRecord:
    """One record read from a shard."""

    shard_id: str
    sequence_number: str
    partition_key: str
    data: bytes
    arrival: str | None


class LyticsKinesisHook(ResendingHookMixin, KinesisHook):
    """``KinesisHook`` plus batched PutRecords that resends only failed records, and shard reads.

    :param aws_conn_id: the Airflow ``aws`` connection.
    :param backoff: resend rounds and delays of failed records.
    """

    # -- writing -----------------------------------------------------------------------------------
    def put_records_call(self, stream_name: str, entries: list[Entry]) -> list[EntryFailure]:
        """One PutRecords call; the records it did not accept (their position tells which)."""
        response = self.get_conn().put_records(
            StreamName=stream_name, Records=[entry.body for entry in entries]
        )
        if not response.get("FailedRecordCount"):
            return []
        failures = []
        for entry, result in zip(entries, response["Records"], strict=True):
            code = result.get("ErrorCode")
            if not code:
                continue
            if code in KEY_CODES:
                raise AirflowFailException(
                    f"Kinesis refused records of stream {stream_name!r} with {code}: "
                    f"{result.get('ErrorMessage', '')} (the stream's KMS key cannot be used; fix its key "
                    "policy or the connection's permissions)"
                )
            failures.append(
                EntryFailure(entry.key, code, result.get("ErrorMessage", ""), code in PASSING_CODES)
            )
        return failures

    def put_entries(self, stream_name: str, entries: list[Entry]) -> dict[str, str]:
        """Send records in calls of at most 500 records and 5 MiB; resend only the failed ones.

        :param stream_name: Stream Name.
        :param entries: each with ``body = {"Data": bytes, "PartitionKey": str}``.
        :return: ``key -> reason`` of records Kinesis refused for good (or that are over 1 MiB).
        """
        return self.deliver(
            entries,
            lambda call: self.put_records_call(stream_name, call),
            KINESIS_LIMITS,
            what=f"records of {stream_name}",
        )

    # -- reading -----------------------------------------------------------------------------------
    def shard_ids(self, stream_name: str) -> list[str]:
        """Every shard of the stream (closed parents before their children), by id."""
        client = self.get_conn()
        shards: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamName": stream_name}
        while True:
            page = client.list_shards(**kwargs)
            shards.extend(page.get("Shards", []))
            token = page.get("NextToken")
            if not token:
                break
            kwargs = {"NextToken": token}
        return sorted(s["ShardId"] for s in shards)

    def read_shard(
        self,
        stream_name: str,
        shard_id: str,
        after_sequence: str | None,
        starting_position: str = "TRIM_HORIZON",
        limit: int = 1000,
        max_records: int | None = None,
    ) -> Iterator[ShardRecord]:
        """Records of one shard after ``after_sequence`` (else from ``starting_position``) until the
        reader is at the tip of the shard, the shard is closed, or ``max_records`` were read.

        :param limit: records per GetRecords call (at most 10,000).
        """
        client = self.get_conn()
        if after_sequence:
            iterator = client.get_shard_iterator(
                StreamName=stream_name,
                ShardId=shard_id,
                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                StartingSequenceNumber=after_sequence,
            )["ShardIterator"]
        else:
            iterator = client.get_shard_iterator(
                StreamName=stream_name, ShardId=shard_id, ShardIteratorType=starting_position
            )["ShardIterator"]
        read = 0
        while iterator:
            page = client.get_records(ShardIterator=iterator, Limit=limit)
            for record in page.get("Records", []):
                arrival = record.get("ApproximateArrivalTimestamp")
                yield ShardRecord(
                    shard_id,
                    record["SequenceNumber"],
                    record.get("PartitionKey", ""),
                    record["Data"],
                    arrival.isoformat() if hasattr(arrival, "isoformat") else None,
                )
                read += 1
                if max_records is not None and read >= max_records:
                    return
            iterator = page.get("NextShardIterator")
            if not page.get("Records") and not page.get("MillisBehindLatest"):
                return  # at the tip: the next run goes on from the checkpoint


class KinesisEventDestination(AcknowledgedEventDestination):
    """Audience events as Kinesis records (see the module docstring).

    :param hook: the Kinesis hook (its ``stats`` count calls and resends).
    :param stream_name: Stream Name.
    """

    def __init__(self, *, hook: LyticsKinesisHook, stream_name: str, **kwargs: Any) -> None:
        kwargs.setdefault("batch_size", MAX_RECORDS)
        super().__init__(**kwargs)
        self.hook = hook
        self.stream_name = stream_name

    def entry(self, event: AudienceEvent) -> Entry:
        data = encode_message(event)
        key = partition_key(event.ident or event.uid)
        return Entry(event.id, len(data) + len(key.encode()), {"Data": data, "PartitionKey": key})

    def send_events(self, events: list[AudienceEvent]) -> Mapping[str, str | None]:
        return self.hook.put_entries(self.stream_name, [self.entry(e) for e in events])

    def describe(self) -> dict[str, Any]:
        return {"stream_name": self.stream_name, "events": list(self.events)}

    def describe_after(self) -> dict[str, Any]:
        return {"kinesis": self.hook.stats.as_dict()}
