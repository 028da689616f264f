"""The ``fields`` option of the file imports: the columns (CSV) or keys (JSON) sent to Lytics.

The Lytics file imports "read the file and list all the fields that can be imported", and the
user selects those to import; the selection is made from one file, so a later file without a
selected field is imported with a warning naming the file and the field, not refused.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from lytics_provider.files.field_selection import check_selected_fields
from lytics_provider.jobs.base import StrictModel


class ImportFieldSelection(StrictModel):
    """``fields`` of a file import (checked against the job's ``timestamp_field``)."""

    fields: list[str] | None = Field(
        default=None,
        description=(
            "The fields to import: column names (CSV) or record keys (JSON); the others are left out. "
            "Default (unset or empty): every field of the file. A selected field a file does not "
            "have is a warning naming the file and the field; the run report lists each file's "
            "fields (fields_found)."
        ),
    )

    @model_validator(mode="after")
    def _check_fields(self) -> ImportFieldSelection:
        check_selected_fields(self.fields, getattr(self, "timestamp_field", None))
        return self
