"""LiveRamp: the audience as a LiveRamp CSV on S3 or SFTP, in the EU format, or as identifiers.

Presets of the partner file drop (:mod:`lytics_provider.files.export_partner`):

- **Export Audiences (S3 / SFTP)**: a CSV with a header row: the **Identifier** first, then the
  **Fields to Export**, then one column per audience slug (**Audience membership**) holding ``1``
  for a member and nothing otherwise; **Append Segment Name** adds ``segment_name`` and
  **Additional Segments** adds ``segments`` (every audience of the member). Multi-value fields
  are joined by **Custom Join** (default ``&``);
- **Export Audiences (EU Format)**: ``Customer ID`` (the identifier), the mapped fields under
  their LiveRamp names, then ``Segment`` holding the audience name or slug;
- **Export Identifier**: two columns, the identifier and the audience name, one line per
  audience the member belongs to.

Every run writes the whole audience under a name stamped with the run (UTC ``%Y%m%d%H%M%S``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from lytics_provider.files.export_layout import FileLayout
from lytics_provider.files.export_membership import AudienceExtras, LinePerAudience, MembershipCells
from lytics_provider.files.export_naming import COMPACT_STAMP, NameTemplate
from lytics_provider.files.export_partner import PartnerDropOperator, PartnerRun
from lytics_provider.files.export_preset import FileDropPreset
from lytics_provider.transfers.lytics_to_sftp import IdentifierCheck

EU_CUSTOMER_ID = "Customer ID"
EU_SEGMENT = "Segment"
IDENTIFIER_HEADER = ("identifier", "segment")


def liveramp_csv(run: PartnerRun) -> FileDropPreset:
    """LiveRamp CSV: identifier, fields, membership columns (+ segment name, + every audience)."""
    cells = MembershipCells(run.columns(), run.extras())
    layout = FileLayout(cells.header(), row_check=IdentifierCheck(run.identifier), cells=cells)
    return FileDropPreset(layout, _name("lytics_liveramp_{slug}_{timestamp}.csv"))


def liveramp_eu(run: PartnerRun) -> FileDropPreset:
    """LiveRamp EU CSV: ``Customer ID``, the mapped fields, then ``Segment`` (name or slug)."""
    mapping: Mapping[str, str] = run.options.get("field_mapping") or {}
    label = run.audience_name(run.slug) if run.options.get("audience_label", "name") == "name" else run.slug
    cells = MembershipCells(
        (run.identifier, *mapping), AudienceExtras(segment_name=label, join=run.custom_join)
    )
    layout = FileLayout(
        (*cells.columns, EU_SEGMENT),
        header=(EU_CUSTOMER_ID, *mapping.values(), EU_SEGMENT),
        row_check=IdentifierCheck(run.identifier),
        cells=cells,
    )
    return FileDropPreset(layout, _name("lytics_liveramp_eu_{slug}_{timestamp}.csv"))


def liveramp_identifiers(run: PartnerRun) -> FileDropPreset:
    """Identifier and audience name, a line per audience of the member."""
    slugs = tuple(dict.fromkeys((run.slug, *run.audience_membership)))
    lines = LinePerAudience(run.identifier, tuple((s, run.audience_name(s)) for s in slugs), always=run.slug)
    layout = FileLayout(IDENTIFIER_HEADER, row_check=IdentifierCheck(run.identifier), lines=lines)
    return FileDropPreset(layout, _name("lytics_liveramp_ids_{slug}_{timestamp}.csv"))


def _name(template: str) -> NameTemplate:
    return NameTemplate(template, COMPACT_STAMP, safe_parts=True)


class LiveRampExportOperator(PartnerDropOperator):
    """LiveRamp Export Audiences (S3 or SFTP): see the module docstring for the file."""

    partner_format = staticmethod(liveramp_csv)


class LiveRampEUExportOperator(PartnerDropOperator):
    """LiveRamp Export Audiences (EU Format).

    :param field_mapping: Lytics field -> LiveRamp EU column (none by default; ``Customer ID``
        always holds the identifier).
    :param audience_label: ``name`` or ``slug`` of the audience in the ``Segment`` column.
    """

    partner_format = staticmethod(liveramp_eu)

    def __init__(
        self,
        *,
        field_mapping: Mapping[str, str] | None = None,
        audience_label: Literal["name", "slug"] = "name",
        **kwargs: Any,
    ) -> None:
        options = {"field_mapping": dict(field_mapping or {}), "audience_label": audience_label}
        super().__init__(partner_options=options, **kwargs)
        self.field_mapping = options["field_mapping"]
        self.audience_label = audience_label


class LiveRampIdentifierExportOperator(PartnerDropOperator):
    """LiveRamp Export Identifier: ``identifier,segment`` lines, one per audience of the member."""

    partner_format = staticmethod(liveramp_identifiers)
