"""Send entries through a batch API that accepts or refuses each entry on its own, and resend only
the entries refused for a passing reason.

Streams and queues (Kinesis PutRecords, SQS SendMessageBatch) take a bounded number of entries and
bytes per call and answer per entry: most accepted, some failed with a code. :func:`deliver_entries`
cuts the entries into calls within the limits, and after each round resends only the failed entries
whose code is passing (throttling, an internal error of the service), waiting a growing delay
between rounds. Entries failed for a lasting reason come back as ``key -> reason`` (the caller turns
them into rejects); entries still failing after the last round raise :class:`ResendExhausted`,
which fails the task so its retry sends them again.

:func:`event_message` is the JSON body such receivers get for one audience event.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """One entry of a batch call.

    :param key: the entry's own id (the event id), unique within a call.
    :param size: the bytes the entry counts toward the call's limit.
    :param body: what the API takes for this entry.
    """

    key: str
    size: int
    body: dict[str, Any]


@dataclass(frozen=True)
class EntryFailure:
    """One entry a call did not accept.

    :param key: the entry's key.
    :param code: the service's error code.
    :param message: the service's message.
    :param passing: a resend may succeed (throttling, an internal error); False: reject it.
    """

    key: str
    code: str
    message: str
    passing: bool

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


class ResendExhausted(RuntimeError):
    """Entries still failed for passing reasons after the last resend (the task's retry sends them)."""


@dataclass
class Backoff:
    """Delays between resend rounds: ``base * 2**(round-1)`` with full jitter, at most ``cap``.

    :param attempts: rounds in all (the first send included).
    :param base: seconds before the first resend.
    :param cap: the longest wait, in seconds.
    :param sleep: how to wait (tests pass a recorder).
    """

    attempts: int = 8
    base: float = 0.1
    cap: float = 5.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def wait(self, round_no: int) -> float:
        delay = random.uniform(0, min(self.cap, self.base * 2 ** (round_no - 1)))
        self.sleep(delay)
        return delay


@dataclass
class BatchLimits:
    """What one call may carry.

    :param max_entries: entries per call.
    :param max_bytes: bytes per call (all entries' sizes added up).
    :param max_entry_bytes: bytes of one entry; a larger one is rejected before sending.
    """

    max_entries: int
    max_bytes: int
    max_entry_bytes: int


@dataclass
class DeliveryStats:
    """What :func:`deliver_entries` did, added up over a run."""

    calls: int = 0
    entries_sent: int = 0
    resent: int = 0
    rounds_with_resends: int = 0
    waited_seconds: float = 0.0
    failure_codes: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "entries_sent": self.entries_sent,
            "resent": self.resent,
            "resend_rounds": self.rounds_with_resends,
            "resend_wait_seconds": round(self.waited_seconds, 3),
            "failure_codes": dict(sorted(self.failure_codes.items())),
        }


def cut_calls(entries: Iterable[Entry], limits: BatchLimits) -> Iterator[list[Entry]]:
    """Group entries, in order, into calls within ``limits`` (each entry must fit one call)."""
    call: list[Entry] = []
    size = 0
    for entry in entries:
        if call and (len(call) >= limits.max_entries or size + entry.size > limits.max_bytes):
            yield call
            call, size = [], 0
        call.append(entry)
        size += entry.size
    if call:
        yield call


def deliver_entries(
    entries: Sequence[Entry],
    send_call: Callable[[list[Entry]], list[EntryFailure]],
    limits: BatchLimits,
    backoff: Backoff,
    stats: DeliveryStats | None = None,
    what: str = "entries",
) -> dict[str, str]:
    """Send ``entries``; resend the passing failures alone; return ``key -> reason`` of the refused.

    :param send_call: sends one call's entries, returns the entries it did not accept.
    :param limits: entries and bytes per call; an entry over ``max_entry_bytes`` is refused unsent.
    :param backoff: rounds and delays of the resends.
    :param stats: added to (calls, resends, failure codes).
    :param what: names the entries in log lines and errors.
    :raises ResendExhausted: entries still failing for passing reasons after ``backoff.attempts``.
        Whatever is raised carries the keys delivered before it (:func:`delivered_keys`).
    """
    stats = stats if stats is not None else DeliveryStats()
    refused: dict[str, str] = {}
    pending: list[Entry] = []
    for entry in entries:
        if entry.size > limits.max_entry_bytes:
            refused[entry.key] = (
                f"EntryTooLarge: {entry.size} bytes is over the {limits.max_entry_bytes} bytes one entry may "
                "carry; export fewer fields (export_fields)"
            )
        else:
            pending.append(entry)
    delivered: list[str] = []
    try:
        _rounds(pending, send_call, limits, backoff, stats, what, refused, delivered)
    except Exception as exc:
        exc.delivered_keys = tuple(delivered)  # type: ignore[attr-defined]
        raise
    return refused


def delivered_keys(exc: BaseException) -> tuple[str, ...]:
    """The keys a failed :func:`deliver_entries` had delivered before ``exc`` (accepted by the service)."""
    return tuple(getattr(exc, "delivered_keys", ()))


def _rounds(
    pending: list[Entry],
    send_call: Callable[[list[Entry]], list[EntryFailure]],
    limits: BatchLimits,
    backoff: Backoff,
    stats: DeliveryStats,
    what: str,
    refused: dict[str, str],
    delivered: list[str],
) -> None:
    round_no = 0
    while pending:
        round_no += 1
        by_key = {e.key: e for e in pending}
        retry: list[Entry] = []
        codes: dict[str, int] = {}
        for call in cut_calls(pending, limits):
            stats.calls += 1
            stats.entries_sent += len(call)
            failed: set[str] = set()
            for failure in send_call(call):
                failed.add(failure.key)
                codes[failure.code] = codes.get(failure.code, 0) + 1
                stats.failure_codes[failure.code] = stats.failure_codes.get(failure.code, 0) + 1
                if failure.passing:
                    retry.append(by_key[failure.key])
                else:
                    refused[failure.key] = failure.reason
            delivered.extend(e.key for e in call if e.key not in failed)
        if not retry:
            break
        if round_no >= backoff.attempts:
            raise ResendExhausted(
                f"{len(retry)} {what} still failed after {round_no} attempts ({codes}); the task's retry "
                "sends them again"
            )
        stats.resent += len(retry)
        stats.rounds_with_resends += 1
        stats.waited_seconds += backoff.wait(round_no)
        log.info("Resending %d of %d %s that failed (%s)", len(retry), len(pending), what, codes)
        pending = retry


class ResendingHookMixin:
    """A hook mixin: batched calls that resend only their failed entries, with the run's stats.

    Put it before the official hook class (``class LyticsSqsHook(ResendingHookMixin, SqsHook)``);
    the hook's other arguments reach the official hook unchanged.

    :param backoff: resend rounds and delays of failed entries.
    """

    def __init__(self, *args: Any, backoff: Backoff | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.backoff = backoff or Backoff()
        self.stats = DeliveryStats()

    def deliver(
        self,
        entries: Sequence[Entry],
        send_call: Callable[[list[Entry]], list[EntryFailure]],
        limits: BatchLimits,
        what: str,
    ) -> dict[str, str]:
        """:func:`deliver_entries` with this hook's backoff and stats."""
        return deliver_entries(entries, send_call, limits, self.backoff, self.stats, what=what)
