"""Omeda SFTP Export: ``"DATE AND TIME EXPORTED".csv`` (e.g. ``2026-11-23_06-00-00.csv``).

A preset of the partner file drop (:mod:`lytics_provider.files.export_partner`): a CSV with a
header row, the **Identifier** first (default ``email``; members without a valid one go to the
rejects file), then the other **Fields to Export** (default every field of the user schema);
multi-value fields are comma-joined, maps are JSON. Every run writes the whole audience to a new
file named from the run's logical date (UTC).
"""

from __future__ import annotations

from lytics_provider.files.export_naming import NameTemplate
from lytics_provider.files.export_partner import PartnerDropOperator, PlainCsv

NAME = NameTemplate("{timestamp}.csv", "%Y-%m-%d_%H-%M-%S", safe_parts=True)


class OmedaExportOperator(PartnerDropOperator):
    """Omeda SFTP Export (see the module docstring)."""

    partner_format = PlainCsv(NAME)
