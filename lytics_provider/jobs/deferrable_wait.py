"""Deferrable-wait options of the job types whose ``deliver`` task waits for a bulk or load job.

``deferrable: true`` hands the wait to Airflow's triggerer, freeing the worker slot; unset, the
operator follows Airflow's ``[operators] default_deferrable``. ``poll_interval`` is the number of
seconds between status polls of the job (unset: the operator's default).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from lytics_provider.jobs.base import StrictModel

WAIT_FIELDS = ("deferrable", "poll_interval")


class DeferrableWaitFields(StrictModel):
    """``deferrable`` and ``poll_interval`` of a job type; its operator arguments go through
    :func:`unset_waits_dropped`."""

    deferrable: bool | None = Field(
        default=None,
        description="Wait for the bulk or load job in the triggerer, freeing the worker slot "
        "(default: Airflow's [operators] default_deferrable).",
    )
    poll_interval: float | None = Field(
        default=None,
        gt=0,
        description="Seconds between status polls of the bulk or load job (default: the operator's).",
    )


def unset_waits_dropped(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` without the wait options left unset, so the operator's defaults apply."""
    return {k: v for k, v in kwargs.items() if not (k in WAIT_FIELDS and v is None)}
