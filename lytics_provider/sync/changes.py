"""Plan a run from the snapshot diff: enters, exits and changes -> planned work per target.

Members who enter (and, for destinations that send changes, members whose "Fields to Trigger"
moved) get the destination's enter action in every target they belong in; members who exit,
and members of a change who left a target, get its exit action. Members with an invalid
identifier are recorded as rejects. An exit whose identifier also enters the same target in this
run is dropped (the member stays). Exits in ``tracked_exit_actions`` are kept only for members
the job added (``sync.ledger``); the others are recorded as ``NotAddedByJob`` and not sent.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lytics_provider.pipeline.exit_guard import ExitGuardVerdict, check_exits
from lytics_provider.pipeline.snapshot import Change, Snapshot, iter_changes, member_count
from lytics_provider.sync.destination import SyncDestination
from lytics_provider.sync.identifiers import lookup_field
from lytics_provider.sync.ledger import MemberLedger
from lytics_provider.sync.plan import Outcome, SyncPlan

NOT_ADDED = "NotAddedByJob"
log = logging.getLogger(__name__)


def trigger_moved(change: Change, fields: Any) -> bool:
    """True when a change moved one of ``fields`` (always for enters, exits and ``fields`` None)."""
    if change.kind != "change" or not fields or change.previous is None:
        return True
    return any(lookup_field(change.record, f) != lookup_field(change.previous, f) for f in fields)


def _actions(dest: SyncDestination, change: Change) -> list[tuple[str, str]]:
    if change.kind == "exit":
        return [(dest.exit_action(), target) for target in dest.targets(change.record)]
    now_in = dest.targets(change.record)
    action = dest.change_action() if change.kind == "change" else dest.enter_action()
    actions = [(action, target) for target in now_in]
    if change.kind == "change" and change.previous is not None:
        gone = set(dest.targets(change.previous)) - set(now_in)
        actions += [(dest.exit_action(), target) for target in sorted(gone)]
    return actions


def plan_changes(
    plan: SyncPlan,
    dest: SyncDestination,
    current: str | Path,
    previous: str | Path | None,
    ledger: MemberLedger | None = None,
) -> dict[str, Any]:
    """Fill ``plan`` with the run's work; return the planned counts (also stored as step ``planned``)."""
    counts: Counter[str] = Counter()
    rejected: list[Outcome] = []
    rows: list[tuple[str, str, str, str, str | None, str | None]] = []
    kinds = tuple(dict.fromkeys([*dest.enter_kinds, "exit"]))
    for change in iter_changes(current, previous, kinds):
        if not trigger_moved(change, dest.trigger_fields):
            counts["untriggered"] += 1
            continue
        counts[change.kind] += 1
        ident, ref = dest.identify(change.record)
        for action, target in _actions(dest, change):
            if action == "ignore":
                continue
            reason = dest.invalid_reason(ident, change.record)
            if reason:
                rejected.append(
                    (ident or f"<{change.uid}>", target, action, change.uid, "Invalid", None, reason)
                )
                continue
            payload = dest.payload(change.record) if action in dest.payload_actions() else None
            rows.append(
                (action, target, change.uid, ident, ref, None if payload is None else json.dumps(payload))
            )
            counts[f"{action}s"] += 1
        if len(rows) >= 5000:
            plan.add_work(rows)
            rows = []
    plan.add_work(rows)
    plan.record(rejected)
    exit_kind = dest.exit_action()
    kept = plan.drop_reentries(exit_kind, dest.enter_action())
    counts[f"{exit_kind}s"] -= kept
    untracked = 0
    if ledger is not None and exit_kind in dest.tracked_exit_actions:
        untracked = _keep_tracked(plan, dest, exit_kind, previous, ledger)
        counts[f"{exit_kind}s"] -= untracked
    planned = {
        "enters": counts["enter"],
        "changes": counts["change"],
        "exits": counts["exit"],
        "adds": counts["adds"],
        "removes": counts["removes"],
        "unsubscribes": counts["unsubscribes"],
        "resubscribes": counts["resubscribes"],
        "invalid": len(rejected),
        "reentries": kept,
    }
    if dest.trigger_fields:
        planned["untriggered_changes"] = counts["untriggered"]
    if untracked:
        planned["not_added_by_job"] = untracked
    if kept:
        log.info("%d exits also enter under another key with the same identifier; they stay", kept)
    return planned


def _keep_tracked(
    plan: SyncPlan, dest: SyncDestination, kind: str, previous: str | Path | None, ledger: MemberLedger
) -> int:
    """Drop planned ``kind`` work of members the job did not add; return how many."""
    targets = plan.targets(kind)
    untracked = [t for t in targets if not ledger.tracks(t)]
    if untracked and previous is not None:
        seeds = _previous_members(dest, previous, set(untracked))
        for target in untracked:
            seeded = ledger.track(target, seeds.get(target, ()))
            log.info("Tracking the members of %s from the committed baseline (%d members)", target, seeded)
    dropped = 0
    for target in targets:
        work = list(plan.iter_work(kind, target))
        added = ledger.added(target, [w.ident for w in work])
        gone = [w for w in work if w.ident not in added]
        if not gone:
            continue
        plan.db.execute("BEGIN")
        plan.db.executemany("DELETE FROM work WHERE seq = ?", [(w.seq,) for w in gone])
        plan.db.execute("COMMIT")
        plan.record((w.ident, target, kind, w.uid, NOT_ADDED, None, None) for w in gone)
        dropped += len(gone)
    if dropped:
        log.info("%d exits are of members this job did not add; they are left alone", dropped)
    return dropped


def _previous_members(dest: SyncDestination, previous: str | Path, targets: set[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {t: [] for t in targets}
    with Snapshot(previous) as snap:
        for _, record in snap.iter_keyed():
            ident, _ = dest.identify(record)
            for target in dest.targets(record):
                if target in found and ident:
                    found[target].append(ident)
    return found


def start_tracking(plan: SyncPlan, dest: SyncDestination, ledger: MemberLedger) -> None:
    """Track every target the run adds to (a first run starts the ledger of its targets)."""
    for target in plan.targets(dest.enter_action()):
        if not ledger.tracks(target):
            ledger.track(target)


def ledger_entries(plan: SyncPlan, dest: SyncDestination) -> Iterator[tuple[str, str, str]]:
    """The run's acknowledged (op, target, ident) ledger entries, from its outcomes."""
    for ident, target, action, _, status, _, reason in plan.iter_outcomes():
        if reason is not None or status in ("Invalid", NOT_ADDED):
            continue
        if action == dest.enter_action() == "add":
            yield "add", target, ident
        elif action in dest.tracked_exit_actions and action == dest.exit_action():
            yield "remove", target, ident


def exit_guard(
    plan: SyncPlan,
    dest: SyncDestination,
    previous: str | Path | None,
    fraction: float,
    min_exits: int,
    allow: bool,
) -> ExitGuardVerdict:
    """The exit guard's verdict on the planned exits (members sent an exit action)."""
    exit_kind = dest.exit_action()
    exits = 0 if exit_kind == "ignore" or previous is None else plan.count_members(exit_kind)
    return check_exits(exits, member_count(previous) if previous else 0, fraction, min_exits, allow)
