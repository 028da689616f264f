"""Taboola S3 CSV Export: audience membership of the users with a Taboola ID, in a shared bucket.

A preset of the partner file drop (:mod:`lytics_provider.files.export_partner`). Membership only,
no profile fields: ``taboola_id,audience`` lines, one per Taboola ID of the member (from
``taboola_ids``, filled by the cookie sync) and per audience it belongs to (the exported one, plus
those in **Audience membership**). Members without a Taboola ID go to the rejects file.
"""

from __future__ import annotations

from lytics_provider.files.export_layout import FileLayout
from lytics_provider.files.export_membership import LinePerAudience, RequiredValue
from lytics_provider.files.export_naming import COMPACT_STAMP, NameTemplate
from lytics_provider.files.export_partner import PartnerDropOperator, PartnerRun
from lytics_provider.files.export_preset import FileDropPreset

TABOOLA_IDS = "taboola_ids"
HEADER = ("taboola_id", "audience")
NAME = NameTemplate("lytics_taboola_{slug}_{timestamp}.csv", COMPACT_STAMP, safe_parts=True)


def taboola(run: PartnerRun) -> FileDropPreset:
    """``taboola_id,audience`` lines of the members with a Taboola ID."""
    slugs = tuple(dict.fromkeys((run.slug, *run.audience_membership)))
    lines = LinePerAudience(TABOOLA_IDS, tuple((s, s) for s in slugs), always=run.slug)
    check = RequiredValue(TABOOLA_IDS, " (only users matched by the Taboola cookie sync are sent)")
    return FileDropPreset(FileLayout(HEADER, row_check=check, lines=lines), NAME)


class TaboolaExportOperator(PartnerDropOperator):
    """Taboola S3 CSV Export (see the module docstring)."""

    partner_format = staticmethod(taboola)
