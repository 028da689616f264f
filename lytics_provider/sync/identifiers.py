"""Identifier normalisation and hashing shared by destinations (emails, phone numbers).

Ad platforms match audiences on SHA-256 hashes of normalised identifiers: an email trimmed and
lower-cased, a phone number in E.164 form (``+`` and digits only). ``hashed`` does both steps.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

EMAIL_RE = re.compile(r"^[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[^@\s,;<>\".]+$")
_NOT_DIGIT = re.compile(r"\D")


def scalar_text(value: Any) -> str:
    """A scalar as text (booleans as true/false, None as empty)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def lookup_field(record: dict[str, Any], name: str) -> Any:
    """A (possibly dotted) field of a profile."""
    value: Any = record
    for part in name.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def normalize_email(value: Any) -> str:
    """An email trimmed and lower-cased (empty when there is none)."""
    return scalar_text(value).strip().lower()


def is_email(text: str) -> bool:
    """True for a plausible email address (one ``@``, a dot in the domain, no separators)."""
    return bool(EMAIL_RE.match(text))


def normalize_phone(value: Any, default_country_code: str = "1") -> str | None:
    """A phone number in E.164 form (``+`` then 8 to 15 digits), or None when it cannot be one.

    :param default_country_code: prefixed to a number written without ``+`` or ``00``.
    """
    text = scalar_text(value).strip()
    if not text:
        return None
    international = text.startswith("+") or text.startswith("00")
    digits = _NOT_DIGIT.sub("", text)
    if text.startswith("00"):
        digits = digits[2:]
    if not international:
        digits = default_country_code + digits.lstrip("0")
    return f"+{digits}" if 8 <= len(digits) <= 15 else None


def sha256_hex(text: str) -> str:
    """The SHA-256 digest of ``text`` (UTF-8) as lower-case hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hashed(kind: str, value: Any) -> str | None:
    """The SHA-256 hex of a normalised ``email`` or ``phone`` (None when the value is not one)."""
    if kind == "email":
        email = normalize_email(value)
        return sha256_hex(email) if is_email(email) else None
    if kind == "phone":
        phone = normalize_phone(value)
        return sha256_hex(phone) if phone else None
    raise ValueError(f"unknown identifier kind {kind!r}: use 'email' or 'phone'")


# -- match keys of the ad platforms' data uploads (names, addresses, postal codes by country) ------

_FOLDED = {"ß": "ss", "ä": "ae", "ö": "oe", "ü": "ue", "ø": "o", "æ": "ae"}
_NOT_ALNUM = re.compile(r"[^a-z0-9]")
CALLING_CODES = {
    "US": "1", "CA": "1", "GB": "44", "UK": "44", "DE": "49", "FR": "33", "ES": "34", "IT": "39",
    "NL": "31", "AU": "61", "JP": "81", "IN": "91", "MX": "52", "BR": "55",
}  # fmt: skip
"""Calling codes of the countries whose numbers may be written without one."""
MATCH_KEYS = ("email", "phone", "first_name", "last_name", "address", "city", "state", "postal_code")


def normalize_plain(value: Any) -> str:
    """Lower case, ``ß ä ö ü ø æ`` spelled out in ASCII, then letters and digits only."""
    text = scalar_text(value).lower()
    for letter, spelled in _FOLDED.items():
        text = text.replace(letter, spelled)
    return _NOT_ALNUM.sub("", text)


def normalize_postal_code(value: Any, country: str = "US") -> str:
    """A US ZIP as its first five digits; elsewhere :func:`normalize_plain`."""
    if country.upper() == "US":
        return _NOT_DIGIT.sub("", scalar_text(value))[:5]
    return normalize_plain(value)


def normalized_match_key(kind: str, value: Any, country: str = "US") -> str | None:
    """``value`` normalised as the match key ``kind`` (one of :data:`MATCH_KEYS`), or None.

    Email: trimmed and lower-cased, and it must look like an address. Phone: E.164 digits without
    the ``+`` (the country's calling code added to a national number). Postal code: see
    :func:`normalize_postal_code`. Names, address, city and state: :func:`normalize_plain`.
    """
    if kind == "email":
        email = normalize_email(value)
        return email if is_email(email) else None
    if kind == "phone":
        code = CALLING_CODES.get(country.upper())
        if code is None:
            known = ", ".join(CALLING_CODES)
            raise ValueError(f"no calling code for country {country!r}; use one of {known}")
        phone = normalize_phone(value, code)
        return phone[1:] if phone else None
    if kind == "postal_code":
        text = normalize_postal_code(value, country)
    elif kind in MATCH_KEYS:
        text = normalize_plain(value)
    else:
        raise ValueError(f"unknown match key {kind!r}; use one of {', '.join(MATCH_KEYS)}")
    return text or None
