"""Google Cloud Pub/Sub jobs: Export Audience, Export Stream and Import Events.

* :class:`PubSubExportAudienceOperator`: the run's audience events (enter / exit / change) to a
  topic, through the sync engine (a checkpoint per acknowledged ``Publish``; a retry resumes after
  it and resends the same ``event_id`` attributes).
* :class:`PubSubExportStreamOperator`: the events a Lytics stream received since the last run. The
  first run only records where the stream ends ("only new events are exported"); the position is
  committed after each acknowledged ``Publish``.
* :class:`PubSubImportEventsOperator`: pull a subscription, send the JSON messages to a Lytics
  stream, and acknowledge them only after Lytics accepted the batch; a failed batch is handed back
  (``ModifyAckDeadline`` 0) so the retry pulls it again.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context

from lytics_provider.files.export_events import stream_pages
from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.hooks.permanent_errors import FailFastOnPermanentErrors
from lytics_provider.hooks.pubsub import DEFAULT_RETRY_SECONDS, LyticsPubSubHook, PubSubEventDestination
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.operators.lytics import run_param
from lytics_provider.pipeline.workarea import JobState, run_dir
from lytics_provider.sync.event_body import compact_json
from lytics_provider.sync.event_operator import FailFastEventOperator
from lytics_provider.sync.operator import SyncRunInputs

_STREAM_NAMESPACE = uuid.UUID("2d0f7c1e-9b7a-4c55-8f0e-5a3c2b1d6e47")


class PubSubExportAudienceOperator(FailFastEventOperator):
    """Publish the run's audience events to a Pub/Sub topic (Export Audience).

    :param topic: the topic id (without ``projects/<project>/topics/``).
    :param project_id: the topic's project; default the connection's project.
    :param create_topic: create the topic when it does not exist (else the run fails at once).
    :param gcp_conn_id: the ``google_cloud_platform`` connection.
    :param retry_seconds: how long a transient ``Publish`` failure is retried before the task fails.
    :param kwargs: :class:`~lytics_provider.sync.event_operator.AudienceEventOperator`'s arguments
        (``batch_size``: events per ``Publish``, at most 1,000).
    """

    template_fields = ("topic", "project_id")
    max_batch_size = 1000

    def __init__(
        self,
        *,
        topic: str,
        project_id: str | None = None,
        create_topic: bool = False,
        gcp_conn_id: str = "google_cloud_default",
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())

    def make_destination(self, inputs: SyncRunInputs) -> PubSubEventDestination:
        hook = LyticsPubSubHook(self.gcp_conn_id, retry_seconds=self.retry_seconds)
        project = hook.resolve_project(self.project_id)
        created = False
        if not inputs.dry_run:
            created = hook.ensure_topic(project, self.topic, self.create_topic)
        dest = PubSubEventDestination(hook, project, self.topic, **self.event_arguments(inputs))
        dest.created_topic = created
        return dest


def stream_event_id(job_id: str, stream: str, page_start: str, index: int) -> str:
    """A stream event's id: its job, stream and position (the same on a retried publish)."""
    return str(uuid.uuid5(_STREAM_NAMESPACE, "\x1f".join((job_id, stream, page_start, str(index)))))


class PubSubExportStreamOperator(FailFastOnPermanentErrors, BaseOperator):
    """Publish the events a Lytics stream received since the last run (Export Stream).

    Each message's ``data`` is the event as JSON (every field of the stream); its attributes are
    ``event_id`` (from the job, the stream and the event's position) and ``stream``.

    :param job_id: the job (its state holds the stream position).
    :param stream: the Lytics stream.
    :param topic: the topic id.
    :param project_id: the topic's project; default the connection's project.
    :param create_topic: create the topic when it does not exist (else the run fails at once).
    :param gcp_conn_id: the ``google_cloud_platform`` connection.
    :param lytics_conn_id: the Lytics connection.
    :param batch_size: events per ``Publish`` (at most 1,000).
    :param retry_seconds: how long a transient ``Publish`` failure is retried before the task fails.
    """

    template_fields = ("stream", "topic", "project_id")
    STATE_KEY = "stream_position"

    def __init__(
        self,
        *,
        job_id: str,
        stream: str,
        topic: str,
        project_id: str | None = None,
        create_topic: bool = False,
        gcp_conn_id: str = "google_cloud_default",
        lytics_conn_id: str = LyticsHook.default_conn_name,
        batch_size: int = 100,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 1 <= batch_size <= 1000:
            raise ValueError(f"batch_size {batch_size!r} must be 1 to 1000 (messages per Publish)")
        keep_arguments(self, locals())

    def execute(self, context: Context) -> dict[str, Any]:
        dry_run = run_param(context, "dry_run")
        state = JobState(self.job_id)
        position = state.get(self.STATE_KEY)
        if position and position.get("stream") != self.stream:
            position = None
        lytics = LyticsHook(self.lytics_conn_id)
        if position is None:
            return self._record_end(lytics, state, dry_run)
        hook = LyticsPubSubHook(self.gcp_conn_id, retry_seconds=self.retry_seconds)
        project = hook.resolve_project(self.project_id)
        created = False if dry_run else hook.ensure_topic(project, self.topic, self.create_topic)
        published = pending = 0
        for page in stream_pages(lytics, self.stream, start=position["start"]):
            skip = position["offset"] if page.start == position["start"] else 0
            fresh = page.events[skip:]
            if dry_run:
                pending += len(fresh)
                continue
            for first in range(0, len(fresh), self.batch_size):
                chunk = fresh[first : first + self.batch_size]
                base = skip + first
                messages = [
                    (
                        compact_json(event).encode(),
                        {
                            "event_id": stream_event_id(self.job_id, self.stream, page.start, base + i),
                            "stream": self.stream,
                        },
                    )
                    for i, event in enumerate(chunk)
                ]
                hook.publish_batch(project, self.topic, messages)
                published += len(chunk)
                position = {"stream": self.stream, "start": page.start, "offset": base + len(chunk)}
                state.update(**{self.STATE_KEY: position})
            if not fresh and page.start != position["start"]:
                position = {"stream": self.stream, "start": page.start, "offset": len(page.events)}
                state.update(**{self.STATE_KEY: position})
        report = {
            "stream": self.stream,
            "topic": hook.topic_path(project, self.topic),
            "created_topic": created,
            "first_run": False,
            "published": published,
            "publish_calls": hook.publish_calls,
            "dry_run": dry_run,
        }
        if dry_run:
            report["would_publish"] = pending
        self.log.info("Export Stream: %s", report)
        return report

    def _record_end(self, lytics: LyticsHook, state: JobState, dry_run: bool) -> dict[str, Any]:
        """First run: remember where the stream ends; its existing events are not exported."""
        existing = 0
        end = {"stream": self.stream, "start": "", "offset": 0}
        for page in stream_pages(lytics, self.stream):
            existing += len(page.events)
            end = {"stream": self.stream, "start": page.start, "offset": len(page.events)}
        if not dry_run:
            state.update(**{self.STATE_KEY: end})
        report = {
            "stream": self.stream,
            "first_run": True,
            "existing_events": existing,
            "published": 0,
            "dry_run": dry_run,
        }
        self.log.info(
            "Export Stream first run: %d existing events of %s are not exported; new events "
            "are sent from the next run on",
            existing,
            self.stream,
        )
        return report


class PubSubImportEventsOperator(FailFastOnPermanentErrors, BaseOperator):
    """Pull a Pub/Sub subscription into a Lytics stream (Import Events); ack only what Lytics accepted.

    :param job_id: the job (run folder of the rejects file).
    :param topic: the topic publishers write JSON messages to.
    :param stream: the Lytics stream the messages go to.
    :param subscription: the subscription the job reads (created on ``topic`` when missing);
        default ``lytics-<job id>``.
    :param project_id: the project of the topic and subscription; default the connection's project.
    :param gcp_conn_id: the ``google_cloud_platform`` connection.
    :param lytics_conn_id: the Lytics connection.
    :param timestamp_field: the message field holding the event time (sent to Lytics as is).
    :param batch_size: messages per pull and per Lytics call (at most 1,000).
    :param max_messages: messages one run imports at most; the rest wait for the next run.
    :param ack_deadline_secs: the ack deadline of a subscription the job creates.
    :param retry_seconds: how long a transient pull failure is retried before the task fails.
    :param pull_wait_seconds: how long a pull waits for messages; a pull that gets none ends the run.
    """

    template_fields = ("topic", "subscription", "stream", "project_id")

    def __init__(
        self,
        *,
        job_id: str,
        topic: str,
        stream: str,
        subscription: str | None = None,
        project_id: str | None = None,
        gcp_conn_id: str = "google_cloud_default",
        lytics_conn_id: str = LyticsHook.default_conn_name,
        timestamp_field: str | None = None,
        batch_size: int = 500,
        max_messages: int = 100_000,
        ack_deadline_secs: int = 60,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
        pull_wait_seconds: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 1 <= batch_size <= 1000:
            raise ValueError(f"batch_size {batch_size!r} must be 1 to 1000 (messages per pull)")
        keep_arguments(self, locals())
        self.subscription = subscription or f"lytics-{job_id}"

    def execute(self, context: Context) -> dict[str, Any]:
        dry_run = run_param(context, "dry_run")
        hook = LyticsPubSubHook(self.gcp_conn_id, retry_seconds=self.retry_seconds)
        project = hook.resolve_project(self.project_id)
        created = hook.ensure_subscription(project, self.topic, self.subscription, self.ack_deadline_secs)
        lytics = LyticsHook(self.lytics_conn_id)
        rejects = run_dir(self.job_id, context["run_id"]) / "rejects.jsonl"
        counts = {
            "pulled": 0,
            "sent": 0,
            "accepted": 0,
            "lytics_rejected": 0,
            "rejected": 0,
            "acknowledged": 0,
        }
        while counts["pulled"] < self.max_messages:
            wanted = min(self.batch_size, self.max_messages - counts["pulled"])
            received = hook.pull_batch(project, self.subscription, wanted, self.pull_wait_seconds)
            if not received:
                break
            counts["pulled"] += len(received)
            ack_ids = [r.ack_id for r in received]
            records, bad = decode_messages(received)
            if dry_run:
                hook.nack(project, self.subscription, ack_ids)
                counts["sent"] += len(records)
                counts["rejected"] += len(bad)
                break
            try:
                if records:
                    result = lytics.collect_json(self.stream, records, timestamp_field=self.timestamp_field)
                    counts["accepted"] += result.accepted
                    counts["lytics_rejected"] += result.rejected
            except Exception:
                with contextlib.suppress(Exception):  # the deadline hands them back anyway
                    hook.nack(project, self.subscription, ack_ids)
                raise
            counts["sent"] += len(records)
            if bad:
                with open(rejects, "a", encoding="utf-8") as out:
                    out.writelines(json.dumps(row) + "\n" for row in bad)
                counts["rejected"] += len(bad)
            hook.acknowledge(subscription=self.subscription, project_id=project, ack_ids=ack_ids)
            counts["acknowledged"] += len(ack_ids)
        report = {
            "subscription": hook.subscription_path(project, self.subscription),
            "created_subscription": created,
            "stream": self.stream,
            **counts,
            "rejects_file": str(rejects) if counts["rejected"] and not dry_run else None,
            "dry_run": dry_run,
        }
        if counts["rejected"]:
            self.log.warning("%d messages were not JSON objects; reasons in %s", counts["rejected"], rejects)
        self.log.info("Import Events: %s", report)
        return report


def decode_messages(received: Sequence[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The JSON objects of pulled messages, and a reject (message id, reason) for each other message."""
    records: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    for item in received:
        message = item.message
        try:
            value = json.loads(bytes(message.data).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            bad.append({"message_id": message.message_id, "reason": f"data is not UTF-8 JSON: {exc}"})
            continue
        if not isinstance(value, dict):
            bad.append(
                {
                    "message_id": message.message_id,
                    "reason": f"data is a JSON {type(value).__name__}, not an object",
                }
            )
            continue
        records.append(value)
    return records, bad
