"""The interface a destination implements to be driven by the sync engine.

Planning hooks say who goes where: ``identify`` (the normalised identifier and an optional
destination reference), ``invalid_reason``, ``targets`` (lists / address books a member belongs
in), ``payload`` (what an add carries), ``enter_action`` / ``exit_action``. Acting hooks send one
batch of planned work of a kind: ``add``, ``remove``, ``unsubscribe``, ``update``, each returning
one outcome per row (see :mod:`lytics_provider.sync.plan`); ``batch_size`` bounds a batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from lytics_provider.pipeline.progress import Progress
from lytics_provider.sync.act import act_in_batches, act_mixed_batches
from lytics_provider.sync.plan import Outcome, SyncPlan, Work

DEFAULT_TARGET = "default"
log = logging.getLogger(__name__)


class SyncDestination:
    """Base of a destination adapter; override the hooks the destination needs."""

    #: snapshot change kinds that send the enter action ("change": members whose fields moved)
    enter_kinds: tuple[str, ...] = ("enter", "change")
    #: "Fields to Trigger": a change counts only when one of these fields moved (None: any field)
    trigger_fields: Sequence[str] | None = None
    #: exit actions sent only to members the job added (see ``sync.ledger``)
    tracked_exit_actions: tuple[str, ...] = ("remove", "unsubscribe")
    #: outcome status of a row the destination refused on its own
    reject_status: str = "Rejected"
    batch_size: int = 1000
    #: kinds sent together, one batch carrying every kind, through ``send_mixed`` (see
    #: ``act.act_mixed_batches``); empty: each kind in its own batches through its hook
    mixed_kinds: tuple[str, ...] = ()

    # -- planning ------------------------------------------------------------------------------
    def identify(self, record: dict[str, Any]) -> tuple[str, str | None]:
        """(normalised identifier, destination reference or None) of a member."""
        raise NotImplementedError

    def invalid_reason(self, ident: str, record: dict[str, Any]) -> str | None:
        """Why a member cannot be sent (None when it can)."""
        return None

    def targets(self, record: dict[str, Any]) -> list[str]:
        """Targets a member belongs in."""
        return [DEFAULT_TARGET]

    def payload(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """What an add carries for this member (stored in the plan)."""
        return None

    def enter_action(self) -> str:
        return "add"

    def exit_action(self) -> str:
        return "ignore"

    def change_action(self) -> str:
        """The action of a member whose fields moved (the enter action unless the destination tells
        changes apart, as event destinations do)."""
        return self.enter_action()

    def payload_actions(self) -> tuple[str, ...]:
        """Actions whose planned work carries ``payload`` (the enter and change actions by default)."""
        return (self.enter_action(), self.change_action())

    def describe(self) -> dict[str, Any]:
        """What the run report says about the destination (ids, names) before anything is sent."""
        return {}

    def describe_after(self) -> dict[str, Any]:
        """Figures the run report adds after delivery (calls made, bulk jobs)."""
        return {}

    # -- acting --------------------------------------------------------------------------------
    def add(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        raise NotImplementedError(f"{type(self).__name__} does not add")

    def remove(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        raise NotImplementedError(f"{type(self).__name__} does not remove")

    def unsubscribe(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        raise NotImplementedError(f"{type(self).__name__} does not unsubscribe")

    def update(self, target: str, rows: list[Work]) -> Iterable[Outcome]:
        raise NotImplementedError(f"{type(self).__name__} does not update")

    def send_mixed(self, target: str, rows: list[tuple[str, Work]]) -> Iterable[Outcome]:
        """Send one batch of ``(kind, work)`` of the :attr:`mixed_kinds` together."""
        raise NotImplementedError(f"{type(self).__name__} does not send kinds together")

    def act(self, plan: SyncPlan, kinds: Sequence[str] = ("add", "update", "remove", "unsubscribe")) -> None:
        """Send every planned kind through its hook, batch by batch (checkpointed); the
        :attr:`mixed_kinds` go together through :meth:`send_mixed`."""
        mixed = tuple(k for k in kinds if k in self.mixed_kinds)
        if mixed:
            for target in sorted({t for k in mixed for t in plan.targets(k)}):
                progress = Progress(log, f"{'+'.join(mixed)} to {target}", sum(map(plan.count_work, mixed)))

                def sent_mixed(
                    rows: list[tuple[str, Work]], t: str = target, p: Progress = progress
                ) -> list[Outcome]:
                    outcomes = list(self.send_mixed(t, rows))
                    p.advance(len(rows))
                    return outcomes

                act_mixed_batches(plan, mixed, target, self.batch_size, sent_mixed, self.reject_status)
                progress.finish()
        for kind in (k for k in kinds if k not in mixed):
            for target in plan.targets(kind):
                send = getattr(self, kind)
                progress = Progress(log, f"{kind} to {target}", plan.count_work(kind))

                def sent(
                    rows: list[Work], t: str = target, s: Any = send, p: Progress = progress
                ) -> list[Outcome]:
                    outcomes = list(s(t, rows))
                    p.advance(len(rows))
                    return outcomes

                act_in_batches(plan, kind, target, self.batch_size, sent, self.reject_status)
                progress.finish()
