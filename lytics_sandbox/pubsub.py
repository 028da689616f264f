"""Loopback gRPC stand-in for Google Cloud Pub/Sub (the Publisher and Subscriber services).

Clients reach it the way they reach Google's own emulator: ``PUBSUB_EMULATOR_HOST=host:port``
makes ``google-cloud-pubsub`` (and so Airflow's ``PubSubHook``) open an insecure gRPC channel to it
with anonymous credentials. Messages on the wire are the ``google.pubsub.v1`` protos shipped in
``google-cloud-pubsub`` (``google.pubsub_v1.types``), served under the method paths of the
``google.pubsub.v1.Publisher`` / ``Subscriber`` services (``google/cloud/pubsub_v1/proto/pubsub.proto``).

Contract followed (https://cloud.google.com/pubsub/docs/reference/rpc/google.pubsub.v1 and
https://cloud.google.com/pubsub/quotas):

* Resource names ``projects/{project}/topics/{topic}`` / ``.../subscriptions/{sub}``; a topic or
  subscription id is 3-255 characters, starts with a letter, and holds letters, digits and
  ``-_.~+%``; it must not start with ``goog``. Anything else is ``INVALID_ARGUMENT``.
* ``CreateTopic`` / ``CreateSubscription`` of an existing name: ``ALREADY_EXISTS``; ``Get*``,
  ``Publish``, ``Pull`` on a missing one: ``NOT_FOUND``; a subscription on a missing topic: ``NOT_FOUND``.
* ``Publish``: at most 1,000 messages and 10 MB per request; each message needs ``data`` or an
  attribute; at most 100 attributes, keys up to 256 bytes, values up to 1,024 bytes. The answer
  lists one ``message_id`` per message, in order. A message reaches the subscriptions that exist
  when it is published.
* ``Pull``: ``max_messages`` must be positive; messages not acknowledged within the
  subscription's ``ack_deadline_seconds`` (default 10) are delivered again with a new ack id.
  ``Acknowledge`` of a current ack id removes the message; ``ModifyAckDeadline`` 0 makes it
  deliverable again at once. A ``Pull`` without ``return_immediately`` waits up to ``pull_wait``
  seconds for a message and answers none after that; one whose caller gave up leases nothing.
* A project passed to :meth:`PubSubSandbox.deny` answers ``PERMISSION_DENIED`` to every call
  (a service account without the Pub/Sub roles); ``faults`` makes the next calls of a method fail
  with a gRPC status (e.g. ``UNAVAILABLE``).
"""

from __future__ import annotations

import itertools
import re
import threading
import time
import uuid
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import empty_pb2, timestamp_pb2
from google.pubsub_v1 import types

MAX_PUBLISH_MESSAGES = 1000
MAX_PUBLISH_BYTES = 10 * 1000 * 1000
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_KEY_BYTES = 256
MAX_ATTRIBUTE_VALUE_BYTES = 1024
DEFAULT_ACK_DEADLINE = 10
_NAME = re.compile(r"^projects/(?P<project>[^/]+)/(?P<kind>topics|subscriptions)/(?P<id>[^/]+)$")
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$")


class RpcError(Exception):
    """A gRPC status the servicer answers with."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Delivery:
    """A message waiting in a subscription: its current ack id and lease."""

    message: types.PubsubMessage
    ack_id: str = ""
    lease_until: float = 0.0
    attempts: int = 0


@dataclass
class Subscription:
    name: str
    topic: str
    ack_deadline_seconds: int = DEFAULT_ACK_DEADLINE
    backlog: dict[str, Delivery] = field(default_factory=dict)
    acked: int = 0


@dataclass
class Fault:
    """Fail the next ``times`` calls of ``method`` (after ``after`` calls pass) with ``code``."""

    method: str
    code: grpc.StatusCode
    times: int | None = 1
    after: int = 0
    seen: int = 0
    fired: int = 0


def _check_name(name: str, kind: str) -> tuple[str, str]:
    match = _NAME.match(name or "")
    if match is None or match["kind"] != kind:
        raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid resource name given (name={name}).")
    if not _ID.match(match["id"]) or match["id"].startswith("goog"):
        raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid resource name given (name={name}).")
    return match["project"], match["id"]


class PubSubSandbox:
    """The stand-in server; :meth:`start` returns the ``host:port`` for ``PUBSUB_EMULATOR_HOST``.

    :param host: the loopback address to bind.
    :param pull_wait: seconds a ``Pull`` without ``return_immediately`` waits for a message.
    """

    def __init__(self, host: str = "127.0.0.1", pull_wait: float = 0.2) -> None:
        self.host = host
        self.port = 0
        self.pull_wait = pull_wait
        self.topics: dict[str, types.Topic] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.published: dict[str, list[types.PubsubMessage]] = {}
        self.calls: dict[str, int] = {}
        self.faults: list[Fault] = []
        self.denied: set[str] = set()
        self._lock = threading.Condition()
        self._ids = itertools.count(1)
        self._server: grpc.Server | None = None
        self._call = threading.local()

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def address(self) -> str:
        """``host:port`` (the value of ``PUBSUB_EMULATOR_HOST``)."""
        if self._server is None:
            raise RuntimeError("server not started")
        return f"{self.host}:{self.port}"

    def start(self) -> str:
        if self._server is not None:
            return self.address
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        server.add_generic_rpc_handlers(
            (
                self._service("google.pubsub.v1.Publisher", self._publisher_methods()),
                self._service("google.pubsub.v1.Subscriber", self._subscriber_methods()),
            )
        )
        self.port = server.add_insecure_port(f"{self.host}:0")
        server.start()
        self._server = server
        return self.address

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop(grace=None)

    def __enter__(self) -> PubSubSandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers for tests -----------------------------------------------------------------
    def deny(self, project: str) -> None:
        """Answer ``PERMISSION_DENIED`` to every call naming ``project``."""
        self.denied.add(project)

    def fail(self, method: str, code: grpc.StatusCode, times: int | None = 1, after: int = 0) -> Fault:
        """Make calls of ``method`` (e.g. ``"Publish"``) fail with ``code``."""
        fault = Fault(method, code, times, after)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove faults and denials."""
        with self._lock:
            self.faults.clear()
            self.denied.clear()

    def messages(self, topic_path: str) -> list[types.PubsubMessage]:
        """Every message accepted on a topic, in publish order (a copy)."""
        with self._lock:
            return list(self.published.get(topic_path, ()))

    def backlog(self, subscription_path: str) -> int:
        """Messages of a subscription not acknowledged yet."""
        with self._lock:
            return len(self.subscriptions[subscription_path].backlog)

    def publish_direct(self, topic_path: str, data: bytes, **attributes: str) -> str:
        """Publish one message as an outside publisher would (tests set up import backlogs)."""
        request = types.PublishRequest(
            topic=topic_path, messages=[types.PubsubMessage(data=data, attributes=attributes)]
        )
        return self._publish(request).message_ids[0]

    # -- plumbing --------------------------------------------------------------------------
    def _service(
        self, service: str, methods: dict[str, tuple[Any, Any, Callable[[Any], Any]]]
    ) -> grpc.GenericRpcHandler:
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                self._wrap(name, handler),
                request_deserializer=request_type.deserialize,
                response_serializer=response_type.serialize,
            )
            for name, (request_type, response_type, handler) in methods.items()
        }
        return grpc.method_handlers_generic_handler(service, handlers)

    def _wrap(self, name: str, handler: Callable[[Any], Any]) -> Callable[[Any, grpc.ServicerContext], Any]:
        def serve(request: Any, context: grpc.ServicerContext) -> Any:
            self._call.context = context
            try:
                self._before(name, request)
                return handler(request)
            except RpcError as exc:
                context.abort(exc.code, exc.message)

        return serve

    def _before(self, name: str, request: Any) -> None:
        with self._lock:
            self.calls[name] = self.calls.get(name, 0) + 1
            for fault in self.faults:
                if fault.method != name:
                    continue
                fault.seen += 1
                if fault.seen > fault.after and (fault.times is None or fault.fired < fault.times):
                    fault.fired += 1
                    raise RpcError(fault.code, f"stand-in fault on {name}")
            for key in ("name", "topic", "subscription"):
                value = getattr(request, key, "")
                project = value.split("/")[1] if isinstance(value, str) and value.count("/") >= 1 else ""
                if project in self.denied:
                    raise RpcError(
                        grpc.StatusCode.PERMISSION_DENIED, "User not authorized to perform this action."
                    )

    def _publisher_methods(self) -> dict[str, tuple[Any, Any, Callable[[Any], Any]]]:
        return {
            "CreateTopic": (types.Topic, types.Topic, self._create_topic),
            "GetTopic": (types.GetTopicRequest, types.Topic, self._get_topic),
            "Publish": (types.PublishRequest, types.PublishResponse, self._publish),
            "DeleteTopic": (types.DeleteTopicRequest, _Empty, self._delete_topic),
        }

    def _subscriber_methods(self) -> dict[str, tuple[Any, Any, Callable[[Any], Any]]]:
        return {
            "CreateSubscription": (types.Subscription, types.Subscription, self._create_subscription),
            "GetSubscription": (types.GetSubscriptionRequest, types.Subscription, self._get_subscription),
            "DeleteSubscription": (types.DeleteSubscriptionRequest, _Empty, self._delete_subscription),
            "Pull": (types.PullRequest, types.PullResponse, self._pull),
            "Acknowledge": (types.AcknowledgeRequest, _Empty, self._acknowledge),
            "ModifyAckDeadline": (types.ModifyAckDeadlineRequest, _Empty, self._modify_ack_deadline),
        }

    # -- Publisher -------------------------------------------------------------------------
    def _create_topic(self, request: types.Topic) -> types.Topic:
        _check_name(request.name, "topics")
        with self._lock:
            if request.name in self.topics:
                raise RpcError(grpc.StatusCode.ALREADY_EXISTS, "Topic already exists")
            topic = types.Topic(name=request.name, labels=dict(request.labels))
            self.topics[request.name] = topic
            self.published[request.name] = []
            return topic

    def _topic(self, name: str) -> types.Topic:
        _check_name(name, "topics")
        topic = self.topics.get(name)
        if topic is None:
            raise RpcError(grpc.StatusCode.NOT_FOUND, "Topic not found")
        return topic

    def _get_topic(self, request: types.GetTopicRequest) -> types.Topic:
        with self._lock:
            return self._topic(request.topic)

    def _delete_topic(self, request: types.DeleteTopicRequest) -> Any:
        with self._lock:
            self._topic(request.topic)
            del self.topics[request.topic]
        return empty_pb2.Empty()

    def _publish(self, request: types.PublishRequest) -> types.PublishResponse:
        messages = list(request.messages)
        if not messages:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "The request contains no messages.")
        if len(messages) > MAX_PUBLISH_MESSAGES:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"The value for message_count is too large. You passed {len(messages)} in the request, "
                f"but the maximum value is {MAX_PUBLISH_MESSAGES}.",
            )
        size = types.PublishRequest.pb(request).ByteSize()
        if size > MAX_PUBLISH_BYTES:
            raise RpcError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"The value for request_size is too large. You passed {size} in the request, but the "
                f"maximum value is {MAX_PUBLISH_BYTES}.",
            )
        for message in messages:
            _check_message(message)
        with self._lock:
            self._topic(request.topic)
            ids = []
            now = time.time()
            for message in messages:
                message_id = str(next(self._ids))
                stored = types.PubsubMessage(
                    data=message.data,
                    attributes=dict(message.attributes),
                    message_id=message_id,
                    ordering_key=message.ordering_key,
                    publish_time=_timestamp(now),
                )
                self.published[request.topic].append(stored)
                for sub in self.subscriptions.values():
                    if sub.topic == request.topic:
                        sub.backlog[message_id] = Delivery(stored)
                ids.append(message_id)
            self._lock.notify_all()
            return types.PublishResponse(message_ids=ids)

    # -- Subscriber ------------------------------------------------------------------------
    def _create_subscription(self, request: types.Subscription) -> types.Subscription:
        _check_name(request.name, "subscriptions")
        deadline = request.ack_deadline_seconds or DEFAULT_ACK_DEADLINE
        if not 10 <= deadline <= 600:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "ack_deadline_seconds must be 10 to 600.")
        with self._lock:
            self._topic(request.topic)
            if request.name in self.subscriptions:
                raise RpcError(grpc.StatusCode.ALREADY_EXISTS, "Subscription already exists")
            self.subscriptions[request.name] = Subscription(request.name, request.topic, deadline)
            return types.Subscription(name=request.name, topic=request.topic, ack_deadline_seconds=deadline)

    def _subscription(self, name: str) -> Subscription:
        _check_name(name, "subscriptions")
        sub = self.subscriptions.get(name)
        if sub is None:
            raise RpcError(grpc.StatusCode.NOT_FOUND, "Subscription does not exist")
        return sub

    def _get_subscription(self, request: types.GetSubscriptionRequest) -> types.Subscription:
        with self._lock:
            sub = self._subscription(request.subscription)
            return types.Subscription(
                name=sub.name, topic=sub.topic, ack_deadline_seconds=sub.ack_deadline_seconds
            )

    def _delete_subscription(self, request: types.DeleteSubscriptionRequest) -> Any:
        with self._lock:
            self._subscription(request.subscription)
            del self.subscriptions[request.subscription]
        return empty_pb2.Empty()

    def _pull(self, request: types.PullRequest) -> types.PullResponse:
        if request.max_messages <= 0:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "max_messages must be greater than 0.")
        wait = 0.0 if request.return_immediately else self.pull_wait
        context = getattr(self._call, "context", None)
        remaining = context.time_remaining() if context is not None else None
        if remaining is not None:  # answer (empty) before the caller's deadline, never after it
            wait = max(0.0, min(wait, remaining - 0.05))
        until = time.time() + wait
        with self._lock:
            while True:
                sub = self._subscription(request.subscription)
                now = time.time()
                due = [d for d in sub.backlog.values() if d.lease_until <= now][: request.max_messages]
                if context is not None and not context.is_active():
                    due = []  # the client gave up waiting: lease nothing to it
                if due or now >= until or (context is not None and not context.is_active()):
                    break
                self._lock.wait(timeout=max(0.0, until - now))
            received = []
            for delivery in due:
                delivery.ack_id = uuid.uuid4().hex
                delivery.lease_until = now + sub.ack_deadline_seconds
                delivery.attempts += 1
                received.append(types.ReceivedMessage(ack_id=delivery.ack_id, message=delivery.message))
            return types.PullResponse(received_messages=received)

    def _acknowledge(self, request: types.AcknowledgeRequest) -> Any:
        if not request.ack_ids:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "No ack ids specified.")
        with self._lock:
            sub = self._subscription(request.subscription)
            current = {d.ack_id: key for key, d in sub.backlog.items() if d.ack_id}
            for ack_id in request.ack_ids:
                key = current.get(ack_id)
                if key is not None:
                    del sub.backlog[key]
                    sub.acked += 1
        return empty_pb2.Empty()

    def _modify_ack_deadline(self, request: types.ModifyAckDeadlineRequest) -> Any:
        if not 0 <= request.ack_deadline_seconds <= 600:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, "ack_deadline_seconds must be 0 to 600.")
        with self._lock:
            sub = self._subscription(request.subscription)
            wanted = set(request.ack_ids)
            for delivery in sub.backlog.values():
                if delivery.ack_id in wanted:
                    delivery.lease_until = time.time() + request.ack_deadline_seconds
            self._lock.notify_all()
        return empty_pb2.Empty()


def _check_message(message: types.PubsubMessage) -> None:
    if not message.data and not message.attributes:
        raise RpcError(
            grpc.StatusCode.INVALID_ARGUMENT, "Some messages are empty: a message needs data or attributes."
        )
    if len(message.attributes) > MAX_ATTRIBUTES:
        raise RpcError(
            grpc.StatusCode.INVALID_ARGUMENT, f"A message has more than {MAX_ATTRIBUTES} attributes."
        )
    for key, value in message.attributes.items():
        if len(key.encode()) > MAX_ATTRIBUTE_KEY_BYTES or len(value.encode()) > MAX_ATTRIBUTE_VALUE_BYTES:
            raise RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"The attribute {key[:40]!r} is too long.")


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


class _Empty:
    """``google.protobuf.Empty`` with the (de)serializers the generic handlers call."""

    @staticmethod
    def serialize(message: Any) -> bytes:
        return empty_pb2.Empty.SerializeToString(message)

    @staticmethod
    def deserialize(data: bytes) -> Any:
        return empty_pb2.Empty.FromString(data)
