"""Audience events as micro-batches: enter / exit / change events from the snapshot diff.

Lytics' own audience triggers fire on every enter and exit. Run on a short schedule, a job here
scans, diffs against the last committed baseline and sends one event per entered, exited or
changed member. Each event has a deterministic id made of (job, run, member, kind), so a retried
batch carries the same ids and a receiver that de-duplicates (SQS FIFO, CloudEvents ``id``,
Segment ``messageId``) sees it once; the sync engine's checkpoints mean acknowledged batches are
not sent again anyway.

Limits, inherent to batches: a member who enters and exits between two runs is not seen; the
interval cannot be shorter than the scan.

* "Existing Users": with ``existing_users`` off, the first run (no baseline) sends nothing and only
  records the audience as it is; later runs send the changes.
* "Fields to Trigger": ``trigger_fields``; a change event is sent only when one of them moved.
* "Audience Trigger Events": ``events``, the kinds sent (``enter``, ``exit``, ``change``).

A destination implements :meth:`EventDestination.send_events` (and :meth:`identify` when its
events are keyed by something other than ``_uid``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lytics_provider.sync.destination import DEFAULT_TARGET, SyncDestination
from lytics_provider.sync.identifiers import lookup_field, scalar_text
from lytics_provider.sync.plan import Outcome, SyncPlan, Work

EVENT_KINDS = ("enter", "exit", "change")
SENT, SKIPPED_EXISTING = "Sent", "SkippedExistingUser"
_NAMESPACE = uuid.UUID("8f3d7c52-5f0e-4a53-9d8c-6c1b5e3a7d10")


def event_id(job_id: str, run_id: str, uid: str, kind: str) -> str:
    """The event's id: the same for the same job, run, member and kind (a retry resends the same id)."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join((job_id, run_id, uid, kind))))


@dataclass(frozen=True)
class AudienceEvent:
    """One enter, exit or change of one member.

    :param id: deterministic id (:func:`event_id`).
    :param kind: ``enter``, ``exit`` or ``change``.
    :param uid: the member's snapshot key.
    :param ident: the member's identifier at the destination (``_uid`` unless the destination says).
    :param audience: the audience slug.
    :param fields: the exported fields of the member (``export_fields``, or every field).
    :param time: when the run saw the event (ISO 8601, UTC).
    """

    id: str
    kind: str
    uid: str
    ident: str
    audience: str
    job_id: str
    run_id: str
    fields: dict[str, Any] = field(default_factory=dict)
    time: str = ""


class EventDestination(SyncDestination):
    """A destination that receives audience events; implement :meth:`send_events`.

    :param job_id: the job (part of every event id).
    :param run_id: the DAG run (part of every event id).
    :param audience: the audience slug events name.
    :param events: the kinds sent ("Audience Trigger Events").
    :param trigger_fields: "Fields to Trigger"; None sends a change event for any field.
    :param export_fields: fields each event carries; None carries every field of the member.
    :param existing_users: on the first run, send an enter event for every member already in.
    :param first_run: no committed baseline exists (the run's diff is the whole audience).
    :param batch_size: events per :meth:`send_events` call.
    """

    tracked_exit_actions: tuple[str, ...] = ()
    enter_kinds: tuple[str, ...] = ("enter", "change")

    def __init__(
        self,
        *,
        job_id: str,
        run_id: str,
        audience: str,
        events: Sequence[str] = ("enter", "exit"),
        trigger_fields: Sequence[str] | None = None,
        export_fields: Sequence[str] | None = None,
        existing_users: bool = True,
        first_run: bool = False,
        batch_size: int = 100,
    ) -> None:
        unknown = sorted(set(events) - set(EVENT_KINDS))
        if unknown:
            raise ValueError(f"unknown event kinds {unknown}; choose from {list(EVENT_KINDS)}")
        self.job_id = job_id
        self.run_id = run_id
        self.audience = audience
        self.events = tuple(events)
        self.trigger_fields = list(trigger_fields) if trigger_fields else None
        self.export_fields = list(export_fields) if export_fields else None
        self.existing_users = existing_users
        self.first_run = first_run
        self.batch_size = batch_size
        self.enter_kinds = ("enter", "change") if "change" in self.events else ("enter",)
        self.stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    # -- planning ------------------------------------------------------------------------------
    def identify(self, record: dict[str, Any]) -> tuple[str, str | None]:
        return scalar_text(record.get("_uid")).strip(), None

    def invalid_reason(self, ident: str, record: dict[str, Any]) -> str | None:
        return None if ident else "the member has no _uid"

    def payload(self, record: dict[str, Any]) -> dict[str, Any]:
        if self.export_fields is None:
            return dict(record)
        return {name: lookup_field(record, name) for name in self.export_fields}

    def enter_action(self) -> str:
        return "enter"

    def change_action(self) -> str:
        return "change"

    def exit_action(self) -> str:
        return "exit" if "exit" in self.events else "ignore"

    def payload_actions(self) -> tuple[str, ...]:
        return EVENT_KINDS

    def targets(self, record: dict[str, Any]) -> list[str]:
        return [DEFAULT_TARGET]

    # -- acting --------------------------------------------------------------------------------
    def send_events(self, events: list[AudienceEvent]) -> Mapping[str, str | None] | None:
        """Send one batch; return ``event id -> reason`` for events the receiver refused on their own
        (None or an empty map: all accepted). Raise ``sync.act.RowLevelBatchError`` when the whole
        batch was refused for a row's sake; any other error fails the task (a retry resumes)."""
        raise NotImplementedError

    def event(self, kind: str, work: Work) -> AudienceEvent:
        return AudienceEvent(
            id=event_id(self.job_id, self.run_id, work.uid, kind),
            kind=kind,
            uid=work.uid,
            ident=work.ident,
            audience=self.audience,
            job_id=self.job_id,
            run_id=self.run_id,
            fields=work.fields(),
            time=self.stamp,
        )

    def deliver_events(
        self, kind: str, target: str, rows: list[Work], events: list[AudienceEvent]
    ) -> Mapping[str, str | None]:
        """Send one batch's events (``rows[i]`` is ``events[i]``'s member); the refused ids and reasons."""
        return self.send_events(events) or {}

    def _send(self, kind: str, target: str, rows: list[Work]) -> Iterable[Outcome]:
        if self.first_run and not self.existing_users:
            return [(w.ident, target, kind, w.uid, SKIPPED_EXISTING, None, None) for w in rows]
        events = [self.event(kind, w) for w in rows]
        refused = self.deliver_events(kind, target, rows, events)
        return [
            (
                w.ident,
                target,
                kind,
                w.uid,
                self.reject_status if refused.get(e.id) else SENT,
                e.id,
                refused.get(e.id),
            )
            for w, e in zip(rows, events, strict=True)
        ]

    def enter(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        return self._send("enter", target, rows)

    def change(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        return self._send("change", target, rows)

    def exit(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        return self._send("exit", target, rows)

    def act(self, plan: SyncPlan, kinds: Sequence[str] = EVENT_KINDS) -> None:
        super().act(plan, [k for k in kinds if k in self.events])
