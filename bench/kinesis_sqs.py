"""Audience events to Amazon Kinesis and Amazon SQS on a moto server: events per second for a
100,000-member first run, and calls per run against the ideal for a 1% churn run.

Run:  .venv/bin/python bench/kinesis_sqs.py [--members 100000] [--churn 0.01]

A synthetic snapshot goes through the sync engine (plan, batches, a checkpoint per acknowledged
call, outcomes, report) and the Kinesis / SQS operators' hooks to a moto server on loopback. The
baseline of each rate is the same events put with the bare boto3 client in the same process (no
engine), so the ratio is the engine's share of the time. The churn run's baseline is the ideal
number of calls, ceil(events / most per call).

Two of moto's in-memory shortcuts cost time in proportion to what it already holds, which no real
service does: each Kinesis record looks up its shard's last sequence number by copying the
shard's keys (replaced here by an O(1) look-up of the same value), and each SQS send walks every
message of the queue (a consumer that keeps up is played by emptying the queue in moto).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ACCOUNT, REGION = "123456789012", "us-east-1"


DESTINATION_BENCH = "Amazon Kinesis / SQS"


def member(i: int) -> dict[str, Any]:
    return {"_uid": f"u{i}", "email": f"user{i}@example.com", "first_name": f"N{i}", "score": i % 100}


def write_snapshot(path: Path, uids: range | list[int]) -> Path:
    from lytics_provider.pipeline.snapshot import Snapshot

    with Snapshot(path) as snap:
        page: list[dict[str, Any]] = []
        for i in uids:
            page.append(member(i))
            if len(page) == 5000:
                snap.add_page(page, "", total=None)
                page = []
        if page:
            snap.add_page(page, "", total=None)
        snap.mark_complete()
    return path


def boto(service: str, endpoint: str) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        region_name=REGION,
    )


@contextmanager
def queue_consumer(name: str, every: float = 0.05) -> Iterator[None]:
    """Empty the moto queue ``name`` every ``every`` seconds (a consumer that keeps up)."""
    from moto.sqs.models import sqs_backends

    stop = threading.Event()

    def run() -> None:
        queue = sqs_backends[ACCOUNT][REGION].queues[name]
        while not stop.wait(every):
            with queue._messages_lock:
                queue._messages.clear()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def fast_kinesis_sequence_numbers() -> None:
    """moto's ``Shard.get_max_sequence_number`` copies every key of the shard; return the same last
    key in O(1) (its records are a dict in insertion order)."""
    from moto.kinesis.models import Shard

    def last_sequence_number(self: Any) -> int:
        return next(reversed(self.records)) if self.records else 0

    Shard.get_max_sequence_number = last_sequence_number  # type: ignore[method-assign]


def sync_run(op: Any, current: Path, previous: Path | None, folder: Path, run_id: str) -> tuple[float, dict]:
    from lytics_provider.sync.operator import SyncRunInputs

    folder.mkdir(parents=True, exist_ok=True)
    inputs = SyncRunInputs(str(current), {"slug": "bench"}, None, previous, False, folder, run_id, {})
    started = time.perf_counter()
    report = op.run_sync(inputs)
    return time.perf_counter() - started, report


def raw_rate(count: int, per_call: int, send: Callable[[list[int]], None]) -> float:
    """Events per second of the bare client sending ``count`` events ``per_call`` at a time."""
    started = time.perf_counter()
    for first in range(0, count, per_call):
        send(list(range(first, min(count, first + per_call))))
    return count / (time.perf_counter() - started)


def message(i: int, run: str) -> bytes:
    body = {"id": str(uuid.uuid4()), "event": "enter", "audience": "bench", "time": run, "uid": f"u{i}"}
    return json.dumps({**body, "user": member(i)}, separators=(",", ":")).encode()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument(
        "--raw-sample",
        type=int,
        default=20_000,
        help="events the bare-client baseline sends (at most --members)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("LYTICS_DATA_DIR", tempfile.mkdtemp(prefix="kinesis-sqs-bench-"))
    work = Path(tempfile.mkdtemp(prefix="kinesis-sqs-snapshots-"))

    import logging

    from moto.server import ThreadedMotoServer

    from lytics_provider.hooks.kinesis import MAX_RECORDS
    from lytics_provider.hooks.sqs import MAX_MESSAGES
    from lytics_provider.operators.kinesis import KinesisAudienceTriggersOperator
    from lytics_provider.operators.sqs import SqsAudienceTriggersOperator

    for name in ("werkzeug", "airflow.task", "lytics_provider", "botocore"):
        logging.getLogger(name).setLevel(logging.ERROR)
    sample = min(args.members, args.raw_sample)
    fast_kinesis_sequence_numbers()
    n, churn = args.members, max(1, int(args.members * args.churn))
    first = write_snapshot(work / "first.db", range(n))
    second = write_snapshot(work / "second.db", [*range(churn, n), *range(n, n + churn)])
    changes = 2 * churn  # exits and enters
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    conn = {"conn_type": "aws", "login": "bench", "password": "bench"}
    conn["extra"] = {"endpoint_url": endpoint, "region_name": REGION}  # type: ignore[assignment]
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(conn)
    rows: list[tuple[str, str, str]] = []
    try:
        kinesis = boto("kinesis", endpoint)
        for name in ("bench_events", "bench_raw"):
            kinesis.create_stream(StreamName=name, ShardCount=4)
        op = KinesisAudienceTriggersOperator(
            task_id="deliver", job_id="bench_kinesis", stream_name="bench_events"
        )
        seconds, report = sync_run(op, first, None, work / "k1", "run1")
        rate = n / seconds
        raw = raw_rate(
            sample,
            MAX_RECORDS,
            lambda ids: kinesis.put_records(
                StreamName="bench_raw",
                Records=[{"Data": message(i, "raw"), "PartitionKey": f"u{i}"} for i in ids],
            ),
        )
        calls = report["kinesis"]["calls"]
        rows += [
            (
                "Kinesis: enters per second, first run",
                f"{rate:,.0f}",
                f"{n:,} enters in {seconds:.1f} s; {calls} PutRecords calls",
            ),
            (
                "Kinesis: bare boto3 put_records, per second",
                f"{raw:,.0f}",
                f"{sample:,} events; the engine runs at {rate / raw:.2f}x of it",
            ),
        ]
        _, churned = sync_run(op, second, first, work / "k2", "run2")
        ideal = math.ceil(changes / MAX_RECORDS)
        made = churned["kinesis"]["calls"]
        rows.append(
            (
                "Kinesis: PutRecords calls, 1% churn run",
                str(made),
                f"ideal ceil({changes:,}/{MAX_RECORDS}) = {ideal}; {made / ideal:.2f}x",
            )
        )

        sqs = boto("sqs", endpoint)
        urls = {name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("bench-events", "bench-raw")}
        op = SqsAudienceTriggersOperator(task_id="deliver", job_id="bench_sqs", sqs_queue="bench-events")
        with queue_consumer("bench-events"):
            seconds, report = sync_run(op, first, None, work / "s1", "run1")
        rate = n / seconds
        with queue_consumer("bench-raw"):
            raw = raw_rate(
                sample,
                MAX_MESSAGES,
                lambda ids: sqs.send_message_batch(
                    QueueUrl=urls["bench-raw"],
                    Entries=[{"Id": f"e{i}", "MessageBody": message(i, "raw").decode()} for i in ids],
                ),
            )
        calls = report["sqs"]["calls"]
        rows += [
            (
                "SQS: enters per second, first run",
                f"{rate:,.0f}",
                f"{n:,} enters in {seconds:.1f} s; {calls:,} SendMessageBatch calls",
            ),
            (
                "SQS: bare boto3 send_message_batch, per second",
                f"{raw:,.0f}",
                f"{sample:,} events; the engine runs at {rate / raw:.2f}x of it",
            ),
        ]
        with queue_consumer("bench-events"):
            _, churned = sync_run(op, second, first, work / "s2", "run2")
        ideal = math.ceil(changes / MAX_MESSAGES)
        made = churned["sqs"]["calls"]
        rows.append(
            (
                "SQS: SendMessageBatch calls, 1% churn run",
                str(made),
                f"ideal ceil({changes:,}/{MAX_MESSAGES}) = {ideal}; {made / ideal:.2f}x",
            )
        )
    finally:
        server.stop()
    print(f"members {n:,}; churn {churn:,} exits + {churn:,} enters")
    print("| measure | value | notes |")
    print("|---|---|---|")
    for row in rows:
        print(f"| {row[0]} | {row[1]} | {row[2]} |")


if __name__ == "__main__":
    main()
