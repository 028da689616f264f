"""Google Cloud Pub/Sub: Airflow's ``PubSubHook`` with the calls the Lytics jobs add, and the
audience-event adapter.

Extends ``airflow.providers.google.cloud.hooks.pubsub.PubSubHook`` (the ``google_cloud_platform``
connection, its service-account key and project) with:

* :meth:`LyticsPubSubHook.publish_batch`: one ``Publish`` call for a whole batch (the RPC is
  all-or-nothing: every message of it is accepted or none), returning the message ids. The hook's
  own ``publish`` sends one message at a time through the client's batcher and waits for each.
* :meth:`LyticsPubSubHook.ensure_topic` / :meth:`ensure_subscription`: look a topic up, create it
  when the job says so, or fail at once naming the option to change.
* :meth:`LyticsPubSubHook.nack`: hand pulled messages back at once (``ModifyAckDeadline`` 0).

Contract: https://cloud.google.com/pubsub/docs/reference/rpc/google.pubsub.v1 (1,000 messages and
10 MB per ``Publish``, https://cloud.google.com/pubsub/quotas). ``PUBSUB_EMULATOR_HOST`` points the
clients at an emulator (``lytics_sandbox.pubsub`` in the tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.google.cloud.hooks.pubsub import PubSubException, PubSubHook
from google.api_core import exceptions as google_errors
from google.api_core.retry import Retry, if_exception_type
from google.pubsub_v1 import types as pubsub_types
from google.pubsub_v1.services.publisher import PublisherClient as GapicPublisherClient

from lytics_provider.hooks.size_groups import size_groups
from lytics_provider.hooks.task_errors import PermanentTaskError
from lytics_provider.sync.event_body import compact_json, event_attributes
from lytics_provider.sync.events import AudienceEvent, EventDestination

MAX_PUBLISH_MESSAGES = 1000
MAX_PUBLISH_BYTES = 10 * 1000 * 1000
MAX_MESSAGE_BYTES = 10 * 1000 * 1000
DEFAULT_RETRY_SECONDS = 60.0
TRANSIENT = (
    google_errors.ServiceUnavailable,
    google_errors.DeadlineExceeded,
    google_errors.InternalServerError,
    google_errors.Aborted,
    google_errors.ResourceExhausted,
    google_errors.Unknown,
)


def publish_retry(seconds: float, transient: tuple[type[Exception], ...] = TRANSIENT) -> Retry:
    """Retry transient failures (unavailable, throttled, aborted) for up to ``seconds``."""
    return Retry(
        predicate=if_exception_type(*transient), initial=0.1, maximum=10.0, multiplier=2.0, timeout=seconds
    )


class LyticsPubSubHook(PubSubHook):
    """``PubSubHook`` plus whole-batch publishing and topic / subscription checks.

    :param gcp_conn_id: the ``google_cloud_platform`` connection (service-account key, project).
    :param retry_seconds: how long a transient ``Publish`` / ``Pull`` failure is retried before the
        call fails (and the task with it; a task retry resumes after the last acknowledged batch).
    """

    def __init__(
        self,
        gcp_conn_id: str = "google_cloud_default",
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(gcp_conn_id=gcp_conn_id, **kwargs)
        self.retry_seconds = retry_seconds
        self.publish_calls = 0

    @staticmethod
    def topic_path(project_id: str, topic: str) -> str:
        return f"projects/{project_id}/topics/{topic}"

    @staticmethod
    def subscription_path(project_id: str, subscription: str) -> str:
        return f"projects/{project_id}/subscriptions/{subscription}"

    def resolve_project(self, project_id: str | None) -> str:
        """``project_id``, else the connection's project; an error naming both when neither is set."""
        project = project_id or self.project_id
        if not project:
            raise PermanentTaskError(
                "no Google Cloud project: set project_id in the job or the project in connection "
                f"{self.gcp_conn_id!r}"
            )
        return project

    def topic_exists(self, project_id: str, topic: str) -> bool:
        try:
            self.get_conn().get_topic(topic=self.topic_path(project_id, topic))
        except google_errors.NotFound:
            return False
        return True

    def ensure_topic(self, project_id: str, topic: str, create: bool) -> bool:
        """True when the topic was created now; a missing topic fails at once unless ``create``."""
        if self.topic_exists(project_id, topic):
            return False
        if not create:
            raise PermanentTaskError(
                f"Pub/Sub topic {self.topic_path(project_id, topic)} does not exist: create it, or set "
                "create_topic: true so the job creates it"
            )
        self.create_topic(topic=topic, project_id=project_id)
        return True

    def ensure_subscription(
        self, project_id: str, topic: str, subscription: str, ack_deadline_secs: int
    ) -> bool:
        """True when the subscription was created now (on ``topic``, which must exist)."""
        try:
            self.subscriber_client.get_subscription(
                subscription=self.subscription_path(project_id, subscription)
            )
            return False
        except google_errors.NotFound:
            pass
        if not self.topic_exists(project_id, topic):
            raise PermanentTaskError(
                f"Pub/Sub topic {self.topic_path(project_id, topic)} does not exist; the import "
                "subscribes to the topic your publishers write to"
            )
        self.create_subscription(
            project_id=project_id, topic=topic, subscription=subscription, ack_deadline_secs=ack_deadline_secs
        )
        return True

    def publish_batch(
        self, project_id: str, topic: str, messages: Sequence[tuple[bytes, dict[str, str]]]
    ) -> list[str]:
        """Publish ``(data, attributes)`` messages in one ``Publish`` call; return their message ids."""
        if not messages:
            return []
        if len(messages) > MAX_PUBLISH_MESSAGES:
            raise ValueError(
                f"{len(messages)} messages in one Publish; Pub/Sub takes at most {MAX_PUBLISH_MESSAGES}"
            )
        request = pubsub_types.PublishRequest(
            topic=self.topic_path(project_id, topic),
            messages=[pubsub_types.PubsubMessage(data=data, attributes=attrs) for data, attrs in messages],
        )
        response = GapicPublisherClient.publish(
            self.get_conn(),
            request=request,
            retry=publish_retry(self.retry_seconds),
            timeout=self.retry_seconds,
        )
        self.publish_calls += 1
        return list(response.message_ids)

    def pull_batch(
        self, project_id: str, subscription: str, max_messages: int, wait_seconds: float
    ) -> list[Any]:
        """Up to ``max_messages`` messages; none when nothing arrived within ``wait_seconds``.

        The pull waits for messages (``return_immediately`` is deprecated: with it the service may
        answer nothing while messages wait); a pull that times out means the backlog is empty.
        """
        transient = tuple(e for e in TRANSIENT if e is not google_errors.DeadlineExceeded)
        try:
            return self.pull(
                subscription=subscription,
                max_messages=max_messages,
                project_id=project_id,
                return_immediately=False,
                retry=publish_retry(self.retry_seconds, transient),
                timeout=wait_seconds,
            )
        except PubSubException as exc:
            if any(isinstance(arg, google_errors.DeadlineExceeded) for arg in exc.args):
                return []
            raise

    def nack(self, project_id: str, subscription: str, ack_ids: Sequence[str]) -> None:
        """Make pulled messages deliverable again at once (``ModifyAckDeadline`` to 0)."""
        if ack_ids:
            self.subscriber_client.modify_ack_deadline(
                request={
                    "subscription": self.subscription_path(project_id, subscription),
                    "ack_ids": list(ack_ids),
                    "ack_deadline_seconds": 0,
                }
            )


def split_publishes(
    messages: list[tuple[bytes, dict[str, str]]], limit: int = MAX_PUBLISH_BYTES - 100_000
) -> list[list[tuple[bytes, dict[str, str]]]]:
    """Consecutive groups that each fit one ``Publish`` (1,000 messages, under 10 MB)."""
    return size_groups(messages, publish_size, limit, MAX_PUBLISH_MESSAGES)


def publish_size(message: tuple[bytes, dict[str, str]]) -> int:
    """Bytes one message (data and attributes) counts toward a ``Publish`` request."""
    return len(message[0]) + sum(len(k) + len(v) + 8 for k, v in message[1].items()) + 16


class PubSubEventDestination(EventDestination):
    """Audience events to a Pub/Sub topic: ``data`` holds the member's fields as JSON (the seed's
    format), attributes the event's ``event_id``, ``event_type``, ``audience`` and ``event_time``.

    :param hook: the Pub/Sub hook.
    :param project_id: the topic's project.
    :param topic: the topic id.
    """

    def __init__(self, hook: LyticsPubSubHook, project_id: str, topic: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hook = hook
        self.project_id = project_id
        self.topic = topic
        self.created_topic = False

    def send_events(self, events: list[AudienceEvent]) -> dict[str, str | None]:
        refused: dict[str, str | None] = {}
        messages = []
        for event in events:
            data = compact_json(event.fields).encode()
            if len(data) > MAX_MESSAGE_BYTES:
                refused[event.id] = (
                    f"the member's fields are {len(data)} bytes; a Pub/Sub message holds 10 MB"
                )
                continue
            messages.append((data, event_attributes(event)))
        for group in split_publishes(messages):
            self.hook.publish_batch(self.project_id, self.topic, group)
        return refused

    def describe(self) -> dict[str, Any]:
        return {
            "topic": self.hook.topic_path(self.project_id, self.topic),
            "created_topic": self.created_topic,
            "events": list(self.events),
        }

    def describe_after(self) -> dict[str, Any]:
        return {"publish_calls": self.hook.publish_calls}
