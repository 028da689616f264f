"""Per-entry batch delivery: calls cut by count and bytes, only passing failures resent, rejects,
and what a failed delivery had delivered."""

from __future__ import annotations

import pytest

from lytics_provider.sync.event_batches import (
    Backoff,
    BatchLimits,
    DeliveryStats,
    Entry,
    EntryFailure,
    ResendExhausted,
    cut_calls,
    deliver_entries,
    delivered_keys,
)

LIMITS = BatchLimits(max_entries=3, max_bytes=100, max_entry_bytes=60)


def entries(*sizes: int) -> list[Entry]:
    return [Entry(f"e{i}", size, {}) for i, size in enumerate(sizes)]


def test_calls_are_cut_by_count_and_by_bytes() -> None:
    calls = list(cut_calls(entries(10, 10, 10, 10, 50, 50, 5), LIMITS))
    assert [[e.key for e in call] for call in calls] == [["e0", "e1", "e2"], ["e3", "e4"], ["e5", "e6"]]


def test_only_passing_failures_are_resent_and_the_rest_refused() -> None:
    calls: list[list[str]] = []
    waits: list[float] = []

    def send(call: list[Entry]) -> list[EntryFailure]:
        calls.append([e.key for e in call])
        if len(calls) > 1:
            return []
        return [EntryFailure("e1", "Throttled", "slow down", True), EntryFailure("e2", "Bad", "no", False)]

    stats = DeliveryStats()
    refused = deliver_entries(entries(10, 10, 10, 70), send, LIMITS, Backoff(sleep=waits.append), stats)
    assert calls == [["e0", "e1", "e2"], ["e1"]]
    assert refused["e2"] == "Bad: no" and refused["e3"].startswith("EntryTooLarge: 70 bytes")
    assert stats.resent == 1 and stats.calls == 2 and len(waits) == 1 and 0 <= waits[0] <= 0.1


def test_failures_that_outlast_the_attempts_raise_with_what_was_delivered() -> None:
    waits: list[float] = []

    def send(call: list[Entry]) -> list[EntryFailure]:
        return [EntryFailure(e.key, "Throttled", "", True) for e in call if e.key != "e0"]

    with pytest.raises(ResendExhausted, match="2 entries still failed after 3 attempts") as failure:
        deliver_entries(
            entries(1, 1, 1), send, LIMITS, Backoff(attempts=3, base=1, cap=1.5, sleep=waits.append)
        )
    assert delivered_keys(failure.value) == ("e0",)
    assert len(waits) == 2 and all(0 <= w <= 1.5 for w in waits)


def test_a_lost_connection_carries_the_keys_of_the_calls_before_it() -> None:
    def send(call: list[Entry]) -> list[EntryFailure]:
        if call[0].key == "e3":
            raise ConnectionError("lost")
        return []

    with pytest.raises(ConnectionError) as failure:
        deliver_entries(entries(*[1] * 5), send, LIMITS, Backoff())
    assert delivered_keys(failure.value) == ("e0", "e1", "e2")
