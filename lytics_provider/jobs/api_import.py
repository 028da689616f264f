"""Imports that read a vendor API's records changed since the last run, in one ``import`` task."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from lytics_provider.jobs.base import JobConfig
from lytics_provider.jobs.one_task import OneTaskJob


class ChangesImportJob(OneTaskJob, JobConfig):
    """One ``import`` task (``task_operator``) reading what changed since the last run; a
    ``full_refresh`` run reads everything again from ``initial_since``."""

    selection_fields: ClassVar[tuple[str, ...]] = ()
    """Two ``import_<what>`` switches of which at least one must be on (none: nothing to check)."""

    initial_since: str = Field(
        default="2000-01-01",
        pattern=r"^\d{4}-\d{2}-\d{2}",
        description="ISO date the first run (and a full_refresh run) reads from.",
    )

    def params(self) -> dict[str, Any]:
        """Full refresh and dry run can be set per run."""
        return {"full_refresh": False, "dry_run": False}

    @model_validator(mode="after")
    def _something_selected(self) -> ChangesImportJob:
        if self.selection_fields and not any(getattr(self, name) for name in self.selection_fields):
            first, second = self.selection_fields
            raise ValueError(
                f"{first} and {second} are both false; select {first.removeprefix('import_')}, "
                f"{second.removeprefix('import_')} or both"
            )
        return self
