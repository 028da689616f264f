"""Identifier normalisation and hashing (lytics_provider.sync.identifiers)."""

from __future__ import annotations

import hashlib

import pytest

from lytics_provider.sync.identifiers import hashed, is_email, normalize_email, normalize_phone, sha256_hex


def test_email_is_trimmed_and_lowercased_before_hashing() -> None:
    assert normalize_email("  Jane.Doe@Example.COM ") == "jane.doe@example.com"
    assert hashed("email", "  Jane.Doe@Example.COM ") == hashed("email", "jane.doe@example.com")
    assert hashed("email", "jane.doe@example.com") == hashlib.sha256(b"jane.doe@example.com").hexdigest()
    assert hashed("email", "not an email") is None
    assert not is_email("a@b") and is_email("a@b.co")


def test_sha256_hex_of_empty_text_is_the_known_digest() -> None:
    assert sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+44 20 7946 0958", "+442079460958"),
        ("0044 20 7946 0958", "+442079460958"),
        ("(555) 123-4567", "+15551234567"),
        ("12", None),
        ("", None),
    ],
)
def test_phone_numbers_become_e164(raw: str, expected: str | None) -> None:
    assert normalize_phone(raw) == expected


def test_unknown_identifier_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown identifier kind 'fax'"):
        hashed("fax", "123")
