"""Read the ``report-faults`` file of a Dotdigital bulk contact import.

``GET /v2/contacts/import/{id}/report-faults`` answers a UTF-8 CSV (possibly with a byte-order
mark): one header row, then one row per rejected contact with the reason first and the email
second. The reasons are plain text (``Globally Suppressed``, ``Hard Bounced``, ...). Dotdigital's
own Magento connector reads the file that way (repository ``dotmailer/dotmailer-magento2-extension``,
``Model/Sync/Importer/ReportHandler/V2ImporterReportHandler.php``).

Every reason maps to one :class:`FaultReason`: the contact status recorded for the member (a
value of Dotdigital's ``ApiContactStatuses``, or ``Rejected`` for rows Dotdigital could not take),
whether resubscribing can help, and a sentence for the rejects file. Reasons are matched without
regard to case, spaces or punctuation, so ``Hard Bounced`` and ``HardBounced`` are one reason.
A reason or a header this module does not know raises :class:`FaultsFileError` naming it: an
unread fault must never be recorded as a successful add.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass

_NOT_ALNUM = re.compile(r"[^a-z0-9]")


class FaultsFileError(ValueError):
    """The faults file does not have the documented shape (unknown header or reason)."""


@dataclass(frozen=True)
class FaultReason:
    """What one fault reason means for the member it names."""

    status: str
    resubscribable: bool
    explanation: str
    duplicate: bool = False


def reason_key(text: str) -> str:
    """A reason without case, spaces or punctuation (``Hard Bounced`` -> ``hardbounced``)."""
    return _NOT_ALNUM.sub("", text.lower())


_SUPPRESSED = "the contact is suppressed in Dotdigital"

# The ten reasons of the connector's list, then the three import-report counters
# (``ApiContactImportReport``: duplicateEmails, softBounced, pendingDoubleOptin) written the same way.
DOCUMENTED_REASONS: dict[str, FaultReason] = {
    "Globally Suppressed": FaultReason(
        "SharedSuppression", False, f"{_SUPPRESSED} (global suppression list); it cannot be resubscribed"
    ),
    "Blocked": FaultReason("NotAllowed", False, "Dotdigital does not allow this email address"),
    "Unsubscribed": FaultReason("Unsubscribed", True, "the contact unsubscribed"),
    "Hard Bounced": FaultReason("HardBounced", False, f"{_SUPPRESSED} (hard bounce)"),
    "Isp Complaints": FaultReason("IspComplained", False, f"{_SUPPRESSED} (ISP complaint)"),
    "Domain Suppressed": FaultReason("DomainSuppression", False, f"{_SUPPRESSED} (its domain is suppressed)"),
    "Failures": FaultReason("Rejected", False, "Dotdigital could not import the row (import failure)"),
    "Invalid Entries": FaultReason(
        "Rejected", False, "Dotdigital found the row invalid (email address or a data field value)"
    ),
    "Mail Blocked": FaultReason("MailBlocked", False, f"{_SUPPRESSED} (the mail server blocks mail)"),
    "Suppressed by you": FaultReason("Suppressed", True, f"{_SUPPRESSED} (suppressed in this account)"),
    "Duplicate Emails": FaultReason(
        "Subscribed", False, "the email appears more than once in the file", duplicate=True
    ),
    "Soft Bounced": FaultReason("SoftBounced", False, f"{_SUPPRESSED} (soft bounce)"),
    "Pending Double Optin": FaultReason("PendingOptIn", False, "the contact has not confirmed double opt-in"),
}

# ``ApiContactStatuses`` names (the v2 OpenAPI's enum) read as the reason they stand for.
STATUS_ALIASES = {
    "SharedSuppression": "Globally Suppressed",
    "NotAllowed": "Blocked",
    "IspComplained": "Isp Complaints",
    "DomainSuppression": "Domain Suppressed",
    "Suppressed": "Suppressed by you",
    "PendingOptIn": "Pending Double Optin",
}

_BY_KEY: dict[str, tuple[str, FaultReason]] = {
    reason_key(name): (name, reason) for name, reason in DOCUMENTED_REASONS.items()
}
_BY_KEY.update({reason_key(alias): _BY_KEY[reason_key(name)] for alias, name in STATUS_ALIASES.items()})

EMAIL_HEADERS = frozenset({"email", "emailaddress"})
REASON_HEADERS = frozenset({"reason"})


def classify(reason: str) -> tuple[str, FaultReason]:
    """``(documented name, meaning)`` of a reason; :class:`FaultsFileError` when it is unknown."""
    found = _BY_KEY.get(reason_key(reason))
    if found is None:
        known = ", ".join(DOCUMENTED_REASONS)
        raise FaultsFileError(f"unknown fault reason {reason!r} (known reasons: {known})")
    return found


@dataclass(frozen=True)
class Fault:
    """One rejected row: the (lower-cased) email, the reason as written and what it means."""

    email: str
    reason: str
    meaning: FaultReason


def _columns(header: list[str]) -> tuple[int, int]:
    keys = [reason_key(name) for name in header]
    reason_at = next((i for i, key in enumerate(keys) if key in REASON_HEADERS), None)
    email_at = next((i for i, key in enumerate(keys) if key in EMAIL_HEADERS), None)
    if reason_at is None or email_at is None:
        raise FaultsFileError(f"unrecognised header {header!r}: expected a Reason column and an Email column")
    return reason_at, email_at


def iter_faults(text: str) -> Iterator[Fault]:
    """The rejected rows of a ``report-faults`` file, in file order (blank lines skipped)."""
    rows = csv.reader(text.lstrip("\ufeff").splitlines())
    header = next(rows, None)
    if header is None:
        return
    reason_at, email_at = _columns(header)
    for number, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(reason_at, email_at):
            raise FaultsFileError(f"line {number} has {len(row)} columns; header {header!r}")
        reason = row[reason_at].strip()
        email = row[email_at].strip().lower()
        if not reason or not email:
            raise FaultsFileError(f"line {number} has no {'reason' if not reason else 'email'}")
        try:
            name, meaning = classify(reason)
        except FaultsFileError as exc:
            raise FaultsFileError(f"line {number}: {exc}") from None
        yield Fault(email, name, meaning)


def faults_by_email(text: str) -> dict[str, Fault]:
    """One fault per email: a row's own reason wins over a duplicate-row note for the same email."""
    found: dict[str, Fault] = {}
    for fault in iter_faults(text):
        current = found.get(fault.email)
        if current is None or (current.meaning.duplicate and not fault.meaning.duplicate):
            found[fault.email] = fault
    return found
