"""Helpers for the Kinesis and SQS tests on the moto server: connections, read-back, fault-injecting
client wrappers, and a sync run of an events operator over a synthetic snapshot."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lytics_provider.sync.operator import SyncRunInputs

Fail = Callable[[int, int, dict[str, Any]], str | None]
"""(call number from 1, index in the call, entry) -> an error code to fail the entry with, or None."""


def aws_connection(monkeypatch: pytest.MonkeyPatch, endpoint: str, conn_id: str = "aws_default") -> None:
    """An Airflow ``aws`` connection to the moto server."""
    conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def client(service: str, endpoint: str) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


def stream_records(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    """Every record of every shard, in shard order then sequence order."""
    out = []
    for shard in sorted(s["ShardId"] for s in kinesis.list_shards(StreamName=stream)["Shards"]):
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            out.extend(page["Records"])
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return out


def drain_queue(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Receive and delete every visible message of the queue."""
    out = []
    while True:
        page = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        if not page:
            return out
        out.extend(page)
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(page)],
        )


class FlakyKinesis:
    """A Kinesis client whose PutRecords fails the entries ``fail`` names (they are not sent), and
    that can lose the connection before or after a chosen call reached the server."""

    def __init__(
        self,
        real: Any,
        fail: Fail | None = None,
        crash_before: int | None = None,
        crash_after: int | None = None,
    ) -> None:
        self.real = real
        self.fail = fail or (lambda call, index, entry: None)
        self.crash_before = crash_before
        self.crash_after = crash_after
        self.calls: list[list[dict[str, Any]]] = []

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Records)
        number = len(self.calls)
        if number == self.crash_before:
            raise ConnectionError("connection lost before the call")
        codes = [self.fail(number, i, r) for i, r in enumerate(Records)]
        good = [r for r, code in zip(Records, codes, strict=True) if code is None]
        accepted = iter(self.real.put_records(StreamName=StreamName, Records=good)["Records"] if good else [])
        results = [
            next(accepted) if code is None else {"ErrorCode": code, "ErrorMessage": f"injected {code}"}
            for code in codes
        ]
        if number == self.crash_after:
            raise ConnectionError("connection lost after the call reached the server")
        return {"FailedRecordCount": sum(code is not None for code in codes), "Records": results}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class FlakySqs:
    """An SQS client whose SendMessageBatch fails the entries ``fail`` names (a ``Sender.`` prefix
    marks the sender's fault; they are not sent), and that can lose the connection before or after
    a chosen call reached the server."""

    def __init__(
        self,
        real: Any,
        fail: Fail | None = None,
        crash_before: int | None = None,
        crash_after: int | None = None,
    ) -> None:
        self.real = real
        self.fail = fail or (lambda call, index, entry: None)
        self.crash_before = crash_before
        self.crash_after = crash_after
        self.calls: list[list[dict[str, Any]]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Entries)
        number = len(self.calls)
        if number == self.crash_before:
            raise ConnectionError("connection lost before the call")
        codes = [self.fail(number, i, e) for i, e in enumerate(Entries)]
        good = [e for e, code in zip(Entries, codes, strict=True) if code is None]
        response = self.real.send_message_batch(QueueUrl=QueueUrl, Entries=good) if good else {}
        failed = [
            {
                "Id": e["Id"],
                "Code": code.removeprefix("Sender."),
                "Message": f"injected {code}",
                "SenderFault": code.startswith("Sender."),
            }
            for e, code in zip(Entries, codes, strict=True)
            if code is not None
        ]
        if number == self.crash_after:
            raise ConnectionError("connection lost after the call reached the server")
        return {
            "Successful": response.get("Successful", []),
            "Failed": [*response.get("Failed", []), *failed],
        }

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def wrap_client(monkeypatch: pytest.MonkeyPatch, hook_class: type, make: Callable[[Any], Any]) -> list[Any]:
    """Make every ``hook_class`` hook's client ``make(real client)``; return the wrappers made."""
    made: list[Any] = []
    original = hook_class.get_conn

    def get_conn(self: Any) -> Any:
        if getattr(self, "_flaky", None) is None:
            self._flaky = make(original(self))
            made.append(self._flaky)
        return self._flaky

    monkeypatch.setattr(hook_class, "get_conn", get_conn)
    return made


def sync_inputs(
    snapshot: Path, folder: Path, run_id: str = "run1", previous: Path | None = None
) -> SyncRunInputs:
    folder.mkdir(parents=True, exist_ok=True)
    return SyncRunInputs(str(snapshot), {"slug": "vip"}, None, previous, False, folder, run_id, {})


def events_of(bodies: list[str | bytes]) -> list[dict[str, Any]]:
    return [json.loads(b) for b in bodies]
