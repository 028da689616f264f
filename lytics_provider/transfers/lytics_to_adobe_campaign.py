"""Adobe Campaign: the hourly or daily CSV file export to an SFTP location that Adobe Campaign
imports from, ``lytics_{slug}_{yyyymmddHHMMSS}.csv``.

A preset of the partner file drop (:mod:`lytics_provider.files.export_partner`), in its
:data:`~lytics_provider.files.export_partner.TIMESTAMPED_CSV` format.
"""

from __future__ import annotations

from lytics_provider.files.export_partner import TIMESTAMPED_CSV, PartnerDropOperator


class AdobeCampaignExportOperator(PartnerDropOperator):
    """Adobe Campaign (see the module docstring)."""

    partner_format = TIMESTAMPED_CSV
