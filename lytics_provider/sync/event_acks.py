"""Events a failed batch had already delivered are kept, so the task's retry does not send them again.

The sync engine checkpoints a batch once :meth:`EventDestination.send_events` returns. A stream or
queue batch can take several calls and resend rounds; when a later call fails (a lost connection,
throttling that outlasted the resends), the events the earlier calls delivered would otherwise be
sent again by the retry. :class:`AcknowledgedEventDestination` records those events as sent in the
run's plan before the error goes up (the error carries their ids, see
:func:`~lytics_provider.sync.event_batches.delivered_keys`), and a retried batch sends only the
events not yet recorded. Only a call whose answer never arrived (the service may have taken it) can
still deliver an event twice; its ``event_id`` is the same both times.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lytics_provider.sync.event_batches import delivered_keys
from lytics_provider.sync.events import EVENT_KINDS, SENT, AudienceEvent, EventDestination
from lytics_provider.sync.plan import SyncPlan, Work


class AcknowledgedEventDestination(EventDestination):
    """An :class:`EventDestination` whose batches resume after the events they had delivered."""

    plan: SyncPlan | None = None

    def act(self, plan: SyncPlan, kinds: Sequence[str] = EVENT_KINDS) -> None:
        self.plan = plan
        super().act(plan, kinds)

    def already_sent(self, kind: str, target: str, events: list[AudienceEvent]) -> set[str]:
        """Ids of ``events`` the plan records as sent (by an attempt that failed later)."""
        if self.plan is None or not events:
            return set()
        marks = ",".join("?" * len(events))
        rows = self.plan.db.execute(
            "SELECT detail FROM outcomes WHERE action = ? AND target = ? AND status = ? "
            f"AND detail IN ({marks})",
            (kind, target, SENT, *(e.id for e in events)),
        )
        return {row[0] for row in rows}

    def deliver_events(
        self, kind: str, target: str, rows: list[Work], events: list[AudienceEvent]
    ) -> Mapping[str, str | None]:
        """Send the events not already acknowledged; on a failure, record those the receiver took."""
        done = self.already_sent(kind, target, events)
        by_id = {e.id: (w, e) for w, e in zip(rows, events, strict=True)}
        try:
            return self.send_events([e for e in events if e.id not in done]) or {}
        except Exception as exc:
            delivered = delivered_keys(exc)
            if self.plan is not None and delivered:
                self.plan.record(
                    [(by_id[k][0].ident, target, kind, by_id[k][0].uid, SENT, k, None) for k in delivered]
                )
            raise
