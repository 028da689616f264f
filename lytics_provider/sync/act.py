"""Act on a plan in batches: one checkpoint per acknowledged batch, bad rows isolated by bisection.

``act_in_batches`` feeds a target's planned work of one kind to ``send`` in batches of
``batch_size``. Each batch's outcomes and its checkpoint (the last ``seq`` sent) are stored in one
transaction once ``send`` returns, so a retried task resends nothing a destination acknowledged.
When ``send`` raises :class:`RowLevelBatchError` (the destination refused the whole batch because
of some row in it), the batch is split in halves and each half sent again, down to single rows;
a single row that is still refused becomes a reject with the destination's reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lytics_provider.sync.plan import Outcome, SyncPlan, Work

Send = Callable[[list[Work]], Iterable[Outcome]]
MixedSend = Callable[[list[tuple[str, Work]]], Iterable[Outcome]]


class RowLevelBatchError(Exception):
    """The destination refused a whole batch because of one or more rows in it (not the service)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class BatchProgress:
    """Where a target's batch loop stands: the last acknowledged ``seq`` and how many batches."""

    after: int = 0
    batches: int = 0
    split: int = 0

    @classmethod
    def load(cls, value: Any) -> BatchProgress:
        if isinstance(value, int):  # plan files written before batch counts were kept
            return cls(after=value)
        return cls(**value) if value else cls()

    def as_step(self) -> dict[str, int]:
        return {"after": self.after, "batches": self.batches, "split": self.split}


def batch_step(kind: str, target: str) -> str:
    """The plan step holding the batch loop's progress for ``kind`` work on ``target``."""
    return f"per_contact:{kind}:{target}"


def act_in_batches(
    plan: SyncPlan,
    kind: str,
    target: str,
    batch_size: int,
    send: Send,
    reject_status: str = "Rejected",
) -> BatchProgress:
    """Send ``kind`` work for ``target`` in batches; return the loop's progress (all batches done).

    :param send: sends one batch and returns one outcome per row it handled; raises
        :class:`RowLevelBatchError` when the destination refused the batch for a row-level reason,
        any other exception fails the task (acknowledged batches stay acknowledged).
    :param reject_status: the outcome status of a row refused on its own.
    """

    def send_one_kind(rows: list[tuple[str, Work]]) -> Iterable[Outcome]:
        return send([work for _, work in rows])

    return act_mixed_batches(plan, (kind,), target, batch_size, send_one_kind, reject_status)


def act_mixed_batches(
    plan: SyncPlan,
    kinds: tuple[str, ...],
    target: str,
    batch_size: int,
    send: MixedSend,
    reject_status: str = "Rejected",
) -> BatchProgress:
    """Send the work of several ``kinds`` for ``target`` together, in ``seq`` order, in batches.

    For destinations whose one request carries every kind (an upsert that adds and removes, a
    batch of operations): a churn run then needs ``ceil((enters + exits) / batch_size)`` requests
    instead of one series per kind. One checkpoint per acknowledged batch, and bisection of a batch
    refused for a row's sake, as in :func:`act_in_batches`.

    :param send: sends one batch of ``(kind, work)`` and returns one outcome per row.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size {batch_size!r} must be 1 or more")
    key = batch_step("+".join(kinds), target)
    progress = BatchProgress.load(plan.step(key))
    batch: list[tuple[str, Work]] = []

    def flush() -> None:
        outcomes = _isolate_mixed(batch, send, target, reject_status, progress)
        progress.after = batch[-1][1].seq
        progress.batches += 1
        plan.record(outcomes, step=(key, progress.as_step()))

    for item in plan.iter_work_of(kinds, target, after=progress.after):
        batch.append(item)
        if len(batch) >= batch_size:
            flush()
            batch = []
    if batch:
        flush()
    return progress


def _isolate_mixed(
    rows: list[tuple[str, Work]], send: MixedSend, target: str, reject_status: str, progress: BatchProgress
) -> list[Outcome]:
    try:
        return list(send(rows))
    except RowLevelBatchError as exc:
        if len(rows) == 1:
            kind, row = rows[0]
            return [(row.ident, target, kind, row.uid, reject_status, None, exc.reason)]
    progress.split += 1
    middle = len(rows) // 2
    return [
        *_isolate_mixed(rows[:middle], send, target, reject_status, progress),
        *_isolate_mixed(rows[middle:], send, target, reject_status, progress),
    ]
