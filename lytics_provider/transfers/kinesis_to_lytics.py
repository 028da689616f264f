"""Amazon Kinesis "Import Activity Data": the records of a Kinesis data stream into a Lytics stream.

Each run reads every shard of the stream (closed parent shards before their children) from the
sequence number after the last one Lytics acknowledged, or from **Starting Position** on the first
run, up to the tip of the shard. Each record's data must be a JSON object; it is posted as it is
(every field reaches the Lytics stream), and one that is not lands in the run's rejects file with
the reason. The checkpoint is the job state key ``kinesis_sequences`` (shard id -> sequence
number); it moves only after Lytics acknowledged the batch holding the record, and each shard's
batch is closed at the end of the shard, so a retried or later run sends nothing twice and skips
nothing Lytics did not take.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from airflow.sdk import BaseOperator, Context

from lytics_provider.files.ingest import StateCheckpoint, StreamWriter
from lytics_provider.hooks.kinesis import LyticsKinesisHook
from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.hooks.permanent_errors import FailFastOnPermanentErrors
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.lytics import run_param
from lytics_provider.pipeline.rejects import RejectsWriter
from lytics_provider.pipeline.retention import prune_job_runs
from lytics_provider.pipeline.workarea import run_dir

StartingPosition = Literal["TRIM_HORIZON", "LATEST"]
CHECKPOINT_KEY = "kinesis_sequences"


def record_object(data: bytes) -> dict[str, Any] | str:
    """The record's JSON object, or why it is not one."""
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        return f"not JSON: {exc}; each record's data must be one JSON object"
    if not isinstance(value, dict):
        return f"JSON {type(value).__name__}, not an object; each record's data must be one JSON object"
    return value


def earlier_rejects(path: Path, positions: dict[str, str]) -> list[dict[str, Any]]:
    """Rejects an earlier attempt of the run wrote for records at or before the checkpoint (those
    records are not read again; the ones after it are, and are rejected again)."""
    if not path.exists():
        return []
    kept = []
    for text in path.read_text(encoding="utf-8").splitlines():
        line = json.loads(text)
        shard, _, sequence = str(line.get("id") or "").partition("/")
        if shard in positions and sequence and int(sequence) <= int(positions[shard]):
            kept.append(line)
    return kept


class KinesisToLyticsOperator(FailFastOnPermanentErrors, BaseOperator):
    """Import the records of a Kinesis data stream into a Lytics stream (see the module docstring).

    :param job_id: the job (names its state and run directory).
    :param stream_name: Stream Name: the Kinesis stream read.
    :param stream: the Lytics stream the records are posted to.
    :param aws_conn_id: the Airflow ``aws`` connection.
    :param starting_position: where the first run starts: ``TRIM_HORIZON`` (the oldest record
        kept) or ``LATEST`` (only records that arrive after it).
    :param timestamp_field: record field Lytics uses as the event time.
    :param batch_size: records per ``/collect/json`` request (also bounded to 8 MB).
    :param max_records_per_run: stop each shard after this many records (None: read to the tip).
    :param get_records_limit: records per GetRecords call (at most 10,000).
    :param lytics_conn_id: the Lytics connection.
    """

    template_fields: Sequence[str] = ("stream_name", "stream")

    def __init__(
        self,
        *,
        job_id: str,
        stream_name: str,
        stream: str,
        aws_conn_id: str | None = "aws_default",
        starting_position: StartingPosition = "TRIM_HORIZON",
        timestamp_field: str | None = None,
        batch_size: int = 1000,
        max_records_per_run: int | None = None,
        get_records_limit: int = 1000,
        lytics_conn_id: str = LyticsHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if starting_position not in ("TRIM_HORIZON", "LATEST"):
            raise ValueError(f"starting_position {starting_position!r} must be 'TRIM_HORIZON' or 'LATEST'")
        if not 1 <= get_records_limit <= 10_000:
            raise ValueError(f"get_records_limit {get_records_limit!r} must be 1 to 10,000")
        keep_arguments(self, locals())

    def execute(self, context: Context) -> dict[str, Any]:
        dry_run = run_param(context, "dry_run")
        kinesis = LyticsKinesisHook(aws_conn_id=self.aws_conn_id)
        lytics = LyticsHook(self.lytics_conn_id)
        checkpoint = StateCheckpoint(self.job_id, CHECKPOINT_KEY)
        positions: dict[str, str] = dict(checkpoint.load() or {})
        folder = run_dir(self.job_id, context["run_id"])
        report: dict[str, Any] = {
            "stream_name": self.stream_name,
            "stream": self.stream,
            "shards": {},
            "rows": 0,
            "rejected": 0,
            "rejected_by_lytics": 0,
            "dry_run": dry_run,
        }

        def acknowledged(position: tuple[str, str]) -> None:
            shard, sequence = position
            positions[shard] = sequence
            checkpoint.save(dict(positions))

        rejects_path = folder / "rejects.jsonl"
        earlier = earlier_rejects(rejects_path, positions)
        rejects = RejectsWriter(rejects_path, logger=self.log)
        try:
            for line in earlier:
                rejects.reject(line["reason"], line.get("row_number"), line.get("record"), id=line.get("id"))
            for shard in kinesis.shard_ids(self.stream_name):
                writer = StreamWriter(
                    lytics,
                    self.stream,
                    timestamp_field=self.timestamp_field,
                    filename=f"kinesis:{self.stream_name}/{shard}",
                    max_batch_records=self.batch_size,
                    on_ack=acknowledged,
                    send=not dry_run,
                )
                read, last = 0, None
                for record in kinesis.read_shard(
                    self.stream_name,
                    shard,
                    positions.get(shard),
                    self.starting_position,
                    self.get_records_limit,
                    self.max_records_per_run,
                ):
                    read += 1
                    last = record.sequence_number
                    row = record_object(record.data)
                    if isinstance(row, str):
                        record_text = record.data.decode("utf-8", "replace")
                        rejects.reject(row, read, record_text, id=f"{shard}/{last}")
                        continue
                    writer.add(row, position=(shard, last))
                writer.close()
                if last is not None and not dry_run and positions.get(shard) != last:
                    acknowledged((shard, last))  # the shard ended on rejected records: nothing to resend
                report["shards"][shard] = {"read": read, "sent": writer.records, "checkpoint": last}
                report["rows"] += writer.records
                report["rejected_by_lytics"] += writer.rejected
        finally:
            rejects.close()  # kept on failure too: the retry does not read those records again
        report["rejected"] = rejects.count
        report["rejects_file"] = str(rejects_path) if report["rejected"] else None
        report["lytics_api_calls"] = lytics.calls
        self.log.info("Kinesis import done: %s", report)
        if not dry_run:
            prune_job_runs(self.job_id, context["run_id"])
        return report
