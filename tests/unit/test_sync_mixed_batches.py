"""Enters and exits sent together (``act_mixed_batches``): seq order, one checkpoint per batch,
bisection of a batch refused for one row, and a retry that resends nothing acknowledged."""

from __future__ import annotations

from pathlib import Path

import pytest

from lytics_provider.sync.act import RowLevelBatchError, act_mixed_batches
from lytics_provider.sync.plan import Outcome, SyncPlan, Work


def plan_with_work(tmp_path: Path) -> SyncPlan:
    plan = SyncPlan(tmp_path / "plan.db")
    rows = [
        ("add" if i % 3 else "remove", "list", f"u{i}", f"m{i}@example.com", None, None) for i in range(10)
    ]
    plan.add_work(rows)
    return plan


def test_kinds_go_together_in_seq_order_and_a_retry_resumes(tmp_path: Path) -> None:
    plan = plan_with_work(tmp_path)
    sent: list[list[tuple[str, str]]] = []

    def send(rows: list[tuple[str, Work]]) -> list[Outcome]:
        if len(sent) == 2:
            raise ConnectionError("network down")
        sent.append([(kind, row.ident) for kind, row in rows])
        return [(row.ident, "list", kind, row.uid, "Done", None, None) for kind, row in rows]

    with pytest.raises(ConnectionError):
        act_mixed_batches(plan, ("add", "remove"), "list", 4, send)
    assert [len(batch) for batch in sent] == [4, 4]
    assert sent[0] == [
        ("remove", "m0@example.com"),
        ("add", "m1@example.com"),
        ("add", "m2@example.com"),
        ("remove", "m3@example.com"),
    ]
    sent.append([])  # let the retry through
    progress = act_mixed_batches(plan, ("add", "remove"), "list", 4, send)
    assert sent[-1] == [("add", "m8@example.com"), ("remove", "m9@example.com")]
    assert progress.batches == 3
    assert plan.counts() == {"add:Done": 6, "remove:Done": 4}


def test_a_row_refused_on_its_own_is_a_reject_of_its_kind(tmp_path: Path) -> None:
    plan = plan_with_work(tmp_path)

    def send(rows: list[tuple[str, Work]]) -> list[Outcome]:
        if any(row.ident == "m6@example.com" for _, row in rows):
            raise RowLevelBatchError("contacts[0].email: blocked")
        return [(row.ident, "list", kind, row.uid, "Done", None, None) for kind, row in rows]

    progress = act_mixed_batches(plan, ("add", "remove"), "list", 10, send)
    assert progress.split > 0
    rejected = list(plan.iter_outcomes(rejected_only=True))
    assert rejected == [
        ("m6@example.com", "list", "remove", "u6", "Rejected", None, "contacts[0].email: blocked")
    ]
