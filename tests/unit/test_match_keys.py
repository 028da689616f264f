"""Match keys of hashed uploads: each kind normalised for its country before SHA-256."""

from __future__ import annotations

import pytest

from lytics_provider.sync.identifiers import normalize_plain, normalize_postal_code, normalized_match_key


@pytest.mark.parametrize(
    ("kind", "value", "country", "expected"),
    [
        ("email", "  Ann@Example.COM ", "US", "ann@example.com"),
        ("email", "no-at-sign", "US", None),
        ("phone", "(415) 555-0100", "US", "14155550100"),
        ("phone", "+44 20 7946 0958", "US", "442079460958"),
        ("phone", "020 7946 0958", "GB", "442079460958"),
        ("phone", "0049 30 1234567", "US", "49301234567"),
        ("phone", "12", "US", None),
        ("first_name", " Jean-Luc ", "FR", "jeanluc"),
        ("last_name", "Größe Ørsted", "DE", "groesseorsted"),
        ("address", "221B Baker St., Apt 4", "GB", "221bbakerstapt4"),
        ("city", "São Paulo", "BR", "sopaulo"),
        ("state", "CA", "US", "ca"),
        ("postal_code", "94107-1234", "US", "94107"),
        ("postal_code", "SW1A 1AA", "GB", "sw1a1aa"),
        ("postal_code", "", "US", None),
    ],
)
def test_each_kind_is_normalised(kind: str, value: str, country: str, expected: str | None) -> None:
    assert normalized_match_key(kind, value, country) == expected


def test_unknown_kinds_and_countries_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown match key 'maid'"):
        normalized_match_key("maid", "x")
    with pytest.raises(ValueError, match="no calling code for country 'ZZ'"):
        normalized_match_key("phone", "5550100", "ZZ")
    assert normalize_plain(None) == "" and normalize_postal_code(None) == ""
