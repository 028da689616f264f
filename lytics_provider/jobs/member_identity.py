"""The ``identity_fields`` option of audience exports (see ``pipeline.identity``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from lytics_provider.pipeline.identity import UID, normalize_identity_fields

IDENTITY_FIELDS_DESCRIPTION = (
    "Fields that identify a member across runs, in order; the first one a member has wins. "
    "Default: _uid, then the job's identifier field (e.g. email). A member with none of them is "
    "left out and written to the scan's rejects file with the reason."
)


def identity_fields_field() -> Any:
    """The pydantic field of ``identity_fields``."""
    return Field(default=None, min_length=1, description=IDENTITY_FIELDS_DESCRIPTION)


def check_identity_fields(value: list[str] | None) -> list[str] | None:
    """Validator: a non-empty list of distinct, non-empty names (None keeps the default)."""
    return None if value is None else normalize_identity_fields(value)


def resolve_identity(configured: Sequence[str] | None, identifiers: Sequence[str]) -> list[str]:
    """The configured identity fields, else ``_uid`` followed by the job's ``identifiers``."""
    if configured:
        return list(configured)
    return list(dict.fromkeys([UID, *(name for name in identifiers if name)]))
