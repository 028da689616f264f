"""The exit guard: stop a run before it removes a large share of the audience it delivered before.

An enter/exit job asks :func:`check_exits` after it planned its run and before it changes
anything at the destination. The run stops when more than ``max_exit_fraction`` of the previous
audience would exit **and** at least ``min_exits`` members would exit (so small audiences are
not stopped by a handful of exits). Nothing is retried: the answer would be the same. The ways
on are the run param ``allow_mass_exit: true`` (one run) or a higher ``max_exit_fraction``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

DEFAULT_MAX_EXIT_FRACTION = 0.25
DEFAULT_MIN_EXITS = 100


class MassExitError(AirflowFailException):
    """Too many members would exit; the run stopped before delivering anything (not retried)."""


@dataclass(frozen=True)
class ExitGuardVerdict:
    """What the guard decided for one run, and on which numbers."""

    exits: int
    previous: int
    max_exit_fraction: float
    min_exits: int
    allow_mass_exit: bool
    over_limit: bool

    @property
    def blocked(self) -> bool:
        """True when the run must stop (over the limit and not allowed for this run)."""
        return self.over_limit and not self.allow_mass_exit

    @property
    def status(self) -> str:
        """``ok``, ``allowed`` (over the limit, let through by ``allow_mass_exit``) or ``blocked``."""
        if not self.over_limit:
            return "ok"
        return "allowed" if self.allow_mass_exit else "blocked"

    def message(self, job: str = "") -> str:
        """The error text: the counts and both ways on."""
        share = self.exits / self.previous if self.previous else 1.0
        where = f" of job {job!r}" if job else ""
        return (
            f"Exit guard{where}: {self.exits} of {self.previous} members of the previous audience "
            f"({share:.1%}) would exit, more than max_exit_fraction {self.max_exit_fraction:g} allows "
            f"(the guard acts from exit_guard_min_exits {self.min_exits} exits). Nothing was delivered. "
            "If these exits are expected, trigger one run with the param allow_mass_exit: true, or "
            "raise max_exit_fraction in the job config."
        )

    def as_report(self) -> dict[str, Any]:
        """The verdict for a run report."""
        return {**asdict(self), "status": self.status}


def check_exits(
    exits: int,
    previous: int,
    max_exit_fraction: float = DEFAULT_MAX_EXIT_FRACTION,
    min_exits: int = DEFAULT_MIN_EXITS,
    allow_mass_exit: bool = False,
) -> ExitGuardVerdict:
    """Judge ``exits`` members leaving an audience of ``previous`` members.

    :param exits: members the run would remove, unsubscribe or otherwise send as an exit.
    :param previous: members of the audience the last committed run delivered.
    :param max_exit_fraction: largest share of ``previous`` that may exit (0 < x <= 1).
    :param min_exits: the guard acts only from this many exits.
    :param allow_mass_exit: let this run through whatever the numbers.
    """
    if not 0 < max_exit_fraction <= 1:
        raise ValueError(f"max_exit_fraction {max_exit_fraction!r} must be above 0 and at most 1")
    if min_exits < 0:
        raise ValueError(f"exit_guard_min_exits {min_exits!r} must be 0 or more")
    over = exits > max_exit_fraction * previous and exits >= min_exits and exits > 0
    return ExitGuardVerdict(exits, previous, max_exit_fraction, min_exits, allow_mass_exit, over)


def enforce(verdict: ExitGuardVerdict, job: str = "") -> None:
    """Raise :class:`MassExitError` when ``verdict`` blocks the run."""
    if verdict.blocked:
        raise MassExitError(verdict.message(job))
