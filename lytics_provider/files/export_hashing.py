"""Columns of hashed match keys: each identifier normalised for its kind and country, then SHA-256.

For partners that match on hashed personal data (Amazon Marketing Cloud's advertiser uploads):
a column per identifier kind holding the lower-case hex SHA-256 of the normalised value, empty
when the member has no usable value. :class:`AnyMatchKey` rejects a member none of whose
identifiers normalises, with the reason, so no row without a match key is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lytics_provider.pipeline.csv_render import RowRejected
from lytics_provider.sync.identifiers import lookup_field, normalized_match_key, sha256_hex


def _first(value: Any) -> Any:
    """The first item of a multi-value field (a profile may hold several emails)."""
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value


@dataclass(frozen=True)
class HashedMatchKeys:
    """``(kind, Lytics field)`` pairs: each cell is the SHA-256 of the normalised field value.

    :param keys: the match-key kind (``email``, ``phone``, ``first_name``...) and the field it
        is read from, in column order.
    :param country: the country the values are normalised for (ISO code, e.g. ``US``).
    """

    keys: tuple[tuple[str, str], ...]
    country: str = "US"

    def header(self) -> tuple[str, ...]:
        """The column names: the kinds."""
        return tuple(kind for kind, _ in self.keys)

    def fields(self) -> tuple[str, ...]:
        """The Lytics fields read."""
        return tuple(field for _, field in self.keys)

    def normalized(self, record: Mapping[str, Any]) -> list[str | None]:
        """Each key of one member, normalised (None when it has no usable value)."""
        profile = record if type(record) is dict else dict(record)
        country = self.country
        return [
            normalized_match_key(kind, _first(lookup_field(profile, field)), country)
            for kind, field in self.keys
        ]

    def __call__(self, record: Mapping[str, Any]) -> list[str]:
        return [sha256_hex(text) if text else "" for text in self.normalized(record)]


@dataclass(frozen=True)
class AnyMatchKey:
    """Reject a member with no usable match key (the reason names the fields tried)."""

    keys: HashedMatchKeys

    def __call__(self, record: Mapping[str, Any]) -> None:
        if not any(self.keys.normalized(record)):
            tried = ", ".join(field for _, field in self.keys.keys)
            raise RowRejected(f"no usable identifier: none of {tried} normalises to a match key")
