"""Adobe Campaign: the hourly or daily CSV file export to an SFTP location that Adobe Campaign
imports from, ``lytics_{slug}_{yyyymmddHHMMSS}.csv``.

A preset of the partner file drop (:mod:`lytics_provider.files.export_partner`): a CSV with a
header row, the **Identifier** first (default ``email``; members without a valid one go to the
rejects file), then the other **Fields to Export** (default every field of the user schema);
multi-value fields are comma-joined, maps are JSON. Every run writes the whole audience to a new
file named from the run's logical date (UTC).
"""

from __future__ import annotations

from lytics_provider.files.export_naming import COMPACT_STAMP, NameTemplate
from lytics_provider.files.export_partner import PartnerDropOperator, PlainCsv

NAME = NameTemplate("lytics_{slug}_{timestamp}.csv", COMPACT_STAMP, safe_parts=True)


class AdobeCampaignExportOperator(PartnerDropOperator):
    """Adobe Campaign (see the module docstring)."""

    partner_format = PlainCsv(NAME)
