"""Export Audiences to Lotame: a membership CSV on S3 or SFTP, keyed by the cookie-exchange id.

A preset of the partner file drop (:mod:`lytics_provider.files.export_partner`). The Lytics page
names both a Lytics-managed S3 bucket and an SFTP server, so either is a destination. The file has
a header row: the **Identifier** (default ``_uid``, the Lytics cookie id that the cookie exchange
shares with Lotame), any **Fields to Export** chosen, then a ``1``/blank column per audience slug
(**Audience membership**, default the exported audience).
"""

from __future__ import annotations

from lytics_provider.files.export_layout import FileLayout
from lytics_provider.files.export_membership import MembershipCells, RequiredValue
from lytics_provider.files.export_naming import COMPACT_STAMP, NameTemplate
from lytics_provider.files.export_partner import PartnerDropOperator, PartnerRun
from lytics_provider.files.export_preset import FileDropPreset

NAME = NameTemplate("lytics_lotame_{slug}_{timestamp}.csv", COMPACT_STAMP, safe_parts=True)


def lotame(run: PartnerRun) -> FileDropPreset:
    """Identifier, chosen fields, membership columns."""
    columns = (run.identifier, *(f for f in run.chosen_fields or () if f != run.identifier))
    cells = MembershipCells(columns, run.extras())
    return FileDropPreset(
        FileLayout(cells.header(), row_check=RequiredValue(run.identifier), cells=cells), NAME
    )


class LotameExportOperator(PartnerDropOperator):
    """Export Audiences to Lotame (see the module docstring)."""

    partner_format = staticmethod(lotame)
