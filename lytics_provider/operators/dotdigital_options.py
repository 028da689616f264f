"""What every Dotdigital delivery step shares: the limits, the errors, the export options, and
what a step uses of the delivery operator it is part of."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

MAX_IMPORT_BYTES = 50 * 1024 * 1024
OPT_IN_TYPES = ("Unknown", "Single", "Double", "VerifiedDouble")
EMAIL_TYPES = ("PlainText", "Html")


class DotdigitalConfigError(ValueError):
    """The job's options do not fit the Dotdigital account (missing address book or data field)."""


class DotdigitalImportError(RuntimeError):
    """A bulk import or bulk removal ended in a failed state."""


@dataclass
class ExportOptions:
    """What to send and how; see the operators for each option."""

    email_field: str = "email"
    id_field: str = "dm_contact_id"
    map_fields: dict[str, str] = field(default_factory=dict)
    opt_in_type: str = "Unknown"
    email_type: str = "Html"
    trigger_join_actions: bool = False
    resubscribe: bool = False
    resubscribe_with_no_challenge: bool = False
    sync_status: bool = False
    max_file_bytes: int = MAX_IMPORT_BYTES
    poll_interval: float = 15.0
    timeout: float = 6 * 3600.0

    @classmethod
    def of(cls, arguments: Mapping[str, Any]) -> ExportOptions:
        """The options among a delivery operator's ``__init__`` arguments (its ``locals()``)."""
        names = {option.name for option in fields(cls)}
        return cls(**{name: value for name, value in arguments.items() if name in names})

    def __post_init__(self) -> None:
        self.map_fields = dict(self.map_fields or {})
        if self.opt_in_type not in OPT_IN_TYPES:
            raise DotdigitalConfigError(
                f"opt_in_type {self.opt_in_type!r} is not one of {', '.join(OPT_IN_TYPES)}"
            )
        if self.email_type not in EMAIL_TYPES:
            raise DotdigitalConfigError(
                f"email_type {self.email_type!r} is not one of {', '.join(EMAIL_TYPES)}"
            )

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys(self.map_fields.values()))

    @property
    def resubscribes(self) -> bool:
        return self.resubscribe or self.resubscribe_with_no_challenge


class DotdigitalStep:
    """What the delivery steps (mixed into the delivery operator) use of that operator."""

    options: ExportOptions
    job_id: str
    account_id: str
    lytics_conn_id: str
    log: Any

    def _wait(self, poll: Callable[[], str], pending: str, job_id: str, status_of: str) -> str:
        """Wait for a bulk job until it leaves ``pending``; its final status."""
        raise NotImplementedError
