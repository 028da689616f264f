"""Partner rows built from a member's audiences: membership columns, key-value pairs, a line per audience.

Ad-tech partners read audience membership from the file itself. The shapes are few:

- :class:`MembershipCells`: the identifier, the profile fields, then one column per audience slug
  holding ``1`` or nothing (LiveRamp CSV); optionally the audience name and every audience of the
  member;
- :class:`MembershipPairs`: the identifier, then ``field=value`` pairs joined by ``|`` with the
  audiences as pairs too (BlueKai's offline file);
- :class:`LinePerAudience`: the identifier and an audience label, one line for each audience of
  the member (LiveRamp Export Identifier, Taboola).

Multi-value fields are joined by ``join`` (the job's **Custom Join**). Every class is a frozen
dataclass, so its ``repr`` goes into the renderer's signature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lytics_provider.pipeline.csv_render import RowRejected
from lytics_provider.pipeline.writers import format_csv_value

MEMBERSHIP_FIELD = "segments"
SEGMENT_NAME_HEADER = "segment_name"
ADDITIONAL_SEGMENTS_HEADER = "segments"
MEMBER_MARK = "1"


def joined_text(value: Any, join: str) -> str:
    """A cell's text with the items of a multi-value field joined by ``join``."""
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return join.join(format_csv_value(item) for item in items)
    return format_csv_value(value)


def member_audiences(record: Mapping[str, Any], field: str = MEMBERSHIP_FIELD) -> list[str]:
    """The audience slugs a member belongs to (a list field, or comma-separated text)."""
    value = record.get(field)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part for part in (p.strip() for p in value.split(",")) if part]
    return [str(item) for item in value]


@dataclass(frozen=True)
class AudienceExtras:
    """What a partner row adds after the profile fields.

    :param audiences: audience slugs with a membership mark each (``1`` or empty).
    :param segment_name: **Append Segment Name**: this text (the exported audience's name) in a
        ``segment_name`` field.
    :param additional_segments: **Additional Segments**: every audience of the member, joined.
    :param every_audience: pairs only: a mark for every audience of the member instead of ``audiences``.
    :param join: joins multi-value text (**Custom Join**).
    :param membership_field: the Lytics field holding the member's audience slugs.
    """

    audiences: tuple[str, ...] = ()
    segment_name: str | None = None
    additional_segments: bool = False
    every_audience: bool = False
    join: str = "&"
    membership_field: str = MEMBERSHIP_FIELD

    def __post_init__(self) -> None:
        repeated = sorted({a for a in self.audiences if self.audiences.count(a) > 1})
        if repeated:
            raise ValueError(f"audience(s) {', '.join(repeated)} listed twice in audience_membership")

    def names(self) -> tuple[str, ...]:
        """Header names of the columns this adds (with ``every_audience`` only the fixed ones)."""
        names = () if self.every_audience else self.audiences
        if self.segment_name is not None:
            names += (SEGMENT_NAME_HEADER,)
        if self.additional_segments:
            names += (ADDITIONAL_SEGMENTS_HEADER,)
        return names

    def items(self, record: Mapping[str, Any]) -> list[tuple[str, str]]:
        """``(name, text)`` of each column this adds, for one member."""
        belongs = member_audiences(record, self.membership_field)
        if self.every_audience:
            items = [(slug, MEMBER_MARK) for slug in belongs]
        else:
            held = set(belongs)
            items = [(slug, MEMBER_MARK if slug in held else "") for slug in self.audiences]
        if self.segment_name is not None:
            items.append((SEGMENT_NAME_HEADER, self.segment_name))
        if self.additional_segments:
            items.append((ADDITIONAL_SEGMENTS_HEADER, self.join.join(belongs)))
        return items


@dataclass(frozen=True)
class MembershipCells:
    """Cells of ``columns`` (the identifier first), then the :class:`AudienceExtras` columns."""

    columns: tuple[str, ...]
    extras: AudienceExtras

    def header(self) -> tuple[str, ...]:
        """The header row."""
        return self.columns + self.extras.names()

    def __call__(self, record: Mapping[str, Any]) -> list[str]:
        join = self.extras.join
        cells = [joined_text(record.get(name), join) for name in self.columns]
        cells.extend(text for _, text in self.extras.items(record))
        return cells


@dataclass(frozen=True)
class MembershipPairs:
    """Two cells: the identifier, then ``name=value`` pairs of the fields and the extras.

    Empty values are left out, so a member lists only the audiences it belongs to.
    """

    id_field: str
    fields: tuple[str, ...]
    extras: AudienceExtras
    pair_join: str = "|"
    key_value: str = "="

    def __call__(self, record: Mapping[str, Any]) -> list[str]:
        join = self.extras.join
        items = [(name, joined_text(record.get(name), join)) for name in self.fields]
        items.extend(self.extras.items(record))
        pairs = self.pair_join.join(f"{name}{self.key_value}{text}" for name, text in items if text != "")
        return [joined_text(record.get(self.id_field), join), pairs]


@dataclass(frozen=True)
class LinePerAudience:
    """``[identifier, label]`` once for each listed audience the member belongs to.

    :param id_field: the identifier field; a multi-value identifier gives a line per value.
    :param labels: ``(slug, label)`` of the audiences, in the order their lines are written.
    :param always: the slug of the exported audience: every scanned member belongs to it, whatever
        its membership field says.
    """

    id_field: str
    labels: tuple[tuple[str, str], ...]
    always: str | None = None
    membership_field: str = MEMBERSHIP_FIELD

    def __call__(self, record: Mapping[str, Any]) -> Sequence[Sequence[str]]:
        held = set(member_audiences(record, self.membership_field))
        if self.always is not None:
            held.add(self.always)
        value = record.get(self.id_field)
        identifiers = value if isinstance(value, (list, tuple)) else [value]
        return [
            [format_csv_value(identifier), label]
            for identifier in identifiers
            if format_csv_value(identifier) != ""
            for slug, label in self.labels
            if slug in held
        ]


@dataclass(frozen=True)
class RequiredValue:
    """Reject a member whose ``field`` is missing, blank or an empty list; ``why`` ends the reason."""

    field: str
    why: str = ""

    def __call__(self, record: Mapping[str, Any]) -> None:
        value = record.get(self.field)
        items = value if isinstance(value, (list, tuple)) else [value]
        if not any(format_csv_value(item).strip() for item in items):
            raise RowRejected(f"missing identifier: no {self.field!r} value{self.why}")
