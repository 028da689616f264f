"""Members of a list at a marketing service, keyed by their email address."""

from __future__ import annotations

from typing import Any

from lytics_provider.sync.identifiers import is_email, lookup_field, normalize_email


class EmailListMembers:
    """Destination mixin: members keyed by email (and an optional id field), all in one list.

    The destination keeps ``email_field``, ``id_field`` and ``list_id`` as attributes.
    """

    email_field: str
    id_field: str | None
    list_id: str

    def identify(self, record: dict[str, Any]) -> tuple[str, str | None]:
        ref = str(lookup_field(record, self.id_field) or "").strip() if self.id_field else ""
        return normalize_email(lookup_field(record, self.email_field)), ref or None

    def invalid_reason(self, ident: str, record: dict[str, Any]) -> str | None:
        if not ident:
            return f"no email in field {self.email_field!r}"
        if not is_email(ident):
            return f"{self.email_field!r} is not a valid email address"
        return None

    def targets(self, record: dict[str, Any]) -> list[str]:
        return [self.list_id]
