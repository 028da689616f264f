"""Export to Selligent (SFTP Export): ``lytics_{slug}_{yyyymmddHHMMSS}.csv`` for a Message Studio
recurring FTP import.

A preset of the partner file drop (:mod:`lytics_provider.files.export_partner`), in its
:data:`~lytics_provider.files.export_partner.TIMESTAMPED_CSV` format.
"""

from __future__ import annotations

from lytics_provider.files.export_partner import TIMESTAMPED_CSV, PartnerDropOperator


class SelligentExportOperator(PartnerDropOperator):
    """Export to Selligent (SFTP Export) (see the module docstring)."""

    partner_format = TIMESTAMPED_CSV
