"""The shared call ledger: sliding window, shared across ledgers and processes, server signals."""

from __future__ import annotations

import multiprocessing

import pytest

from lytics_provider.pipeline.ratelimit import CallLedger, RateLimitWaitTooLong, ledger_key, reset_time


class FakeClock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_waits_for_the_oldest_call_to_leave_the_window(tmp_path) -> None:
    clock = FakeClock()
    ledger = CallLedger(tmp_path / "l.db", limit=3, window=60, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        assert ledger.acquire() == 0.0
        clock.now += 10
    waited = ledger.acquire()
    assert waited == 30.0
    assert clock.slept == [30.0]
    assert ledger.usage().used == 3


def test_two_ledgers_on_one_file_share_the_budget(tmp_path) -> None:
    clock = FakeClock()
    first = CallLedger(tmp_path / "l.db", limit=4, window=3600, clock=clock, sleep=clock.sleep)
    second = CallLedger(tmp_path / "l.db", limit=4, window=3600, clock=clock, sleep=clock.sleep)
    granted = [first.try_acquire(), second.try_acquire(), first.try_acquire(), second.try_acquire()]
    assert granted == [True] * 4
    assert not first.try_acquire() and not second.try_acquire()


def _grab(path: str, attempts: int, queue) -> None:
    ledger = CallLedger(path, limit=25, window=3600)
    queue.put(sum(ledger.try_acquire() for _ in range(attempts)))


def test_processes_never_exceed_the_budget_together(tmp_path) -> None:
    path = str(tmp_path / "shared.db")
    CallLedger(path, limit=25)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_grab, args=(path, 20, queue)) for _ in range(3)]
    for proc in procs:
        proc.start()
    granted = sum(queue.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
    assert granted == 25


def test_a_pause_blocks_everyone_until_the_reset(tmp_path) -> None:
    clock = FakeClock()
    ledger = CallLedger(tmp_path / "l.db", limit=100, clock=clock, sleep=clock.sleep)
    other = CallLedger(tmp_path / "l.db", limit=100, clock=clock, sleep=clock.sleep)
    ledger.pause_until(clock.now + 42)
    ledger.pause_until(clock.now + 5)  # never shortens a pause
    assert other.acquire() == 42.0


def test_server_usage_tightens_the_budget_and_max_wait_fails_clearly(tmp_path) -> None:
    clock = FakeClock()
    ledger = CallLedger(tmp_path / "l.db", limit=10, window=3600, max_wait=60, clock=clock, sleep=clock.sleep)
    assert ledger.try_acquire()
    assert ledger.observe_usage(9) == 8
    assert ledger.usage().remaining == 1
    assert ledger.try_acquire()
    try:
        ledger.acquire()
    except RateLimitWaitTooLong as exc:
        assert "10 calls per 3600s" in str(exc)
    else:
        raise AssertionError("a full budget must not be exceeded")


def test_key_hashes_the_username_and_never_holds_secrets() -> None:
    key = ledger_key("dotdigital_default", "ApiUser@apiconnector.com")
    assert key.startswith("dotdigital_default-")
    assert "apiuser" not in key.lower()
    assert key == ledger_key("dotdigital_default", "apiuser@apiconnector.com ")


def test_reset_header_is_read_as_epoch_or_as_seconds_until_the_reset() -> None:
    """``X-RateLimit-Reset``: an epoch time per Dotdigital's call-rate-limits page and error-code
    list (api-evangelist/dotdigital, errors/dotdigital-error-codes.yml), seconds until the reset per
    its PHP SDK (dotmailer/dotdigital-php, src/Exception/TooManyRequestsException.php). A value
    below 10^9 cannot be a current epoch time, so it is a delay.
    """
    now = 1_800_000_000.0
    assert reset_time("42", now) == now + 42
    assert reset_time(" 0 ", now) == now
    assert reset_time("1800000060", now) == 1_800_000_060.0
    assert reset_time("soon", now) is None
    assert reset_time("-5", now) is None


def test_a_held_call_counts_from_its_answer(tmp_path) -> None:
    clock = FakeClock()
    ledger = CallLedger(tmp_path / "l.db", limit=1, window=10, clock=clock, sleep=clock.sleep)
    with ledger.held() as waited:
        assert waited == 0.0
        clock.now += 0.5  # the request is in transit; the server counts it somewhere in here
    clock.now += 9.7
    assert ledger.acquire() == pytest.approx(0.3)  # a window after the answer, not after the send
    assert clock.slept == [pytest.approx(0.3)]


def test_a_call_held_longer_than_the_window_is_counted_again_at_its_answer(tmp_path) -> None:
    clock = FakeClock()
    ledger = CallLedger(tmp_path / "l.db", limit=2, window=10, clock=clock, sleep=clock.sleep)
    with ledger.held():
        clock.now += 11
        assert ledger.try_acquire()  # drops the held call's row: it left the window
    assert ledger.usage().used == 2
    assert not ledger.try_acquire()
