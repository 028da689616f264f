"""Exit guard options of the job types whose runs send exits (see ``pipeline.exit_guard``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from lytics_provider.jobs.base import StrictModel
from lytics_provider.pipeline.exit_guard import DEFAULT_MAX_EXIT_FRACTION, DEFAULT_MIN_EXITS

ALLOW_MASS_EXIT_PARAM = "allow_mass_exit"
ALLOW_MASS_EXIT_DESCRIPTION = (
    "Let this run remove or unsubscribe more members than max_exit_fraction allows (the exit guard)."
)


class ExitGuardFields(StrictModel):
    """``max_exit_fraction`` and ``exit_guard_min_exits``; list it before the job's other bases so
    its :meth:`params` adds the ``allow_mass_exit`` run param."""

    max_exit_fraction: float = Field(
        default=DEFAULT_MAX_EXIT_FRACTION,
        gt=0,
        le=1,
        description="Exit guard: a run whose exits are more than this share of the previous audience "
        "stops before delivering anything (1 turns the guard off).",
    )
    exit_guard_min_exits: int = Field(
        default=DEFAULT_MIN_EXITS,
        ge=0,
        description="Exit guard: it acts only from this many exits, so small audiences are not stopped.",
    )

    def exit_guard_kwargs(self) -> dict[str, Any]:
        """The exit guard arguments of the ``deliver`` operator (same names as the fields)."""
        return {
            "max_exit_fraction": self.max_exit_fraction,
            "exit_guard_min_exits": self.exit_guard_min_exits,
        }

    def params(self) -> dict[str, Any]:
        """The job's params plus ``allow_mass_exit`` (false)."""
        return {**super().params(), ALLOW_MASS_EXIT_PARAM: False}  # type: ignore[misc]
