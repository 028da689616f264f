"""BlueKai SFTP Export: the offline file ``Partner_SiteID_YYYY-MM-DD.gz``, then its trigger file.

A preset of the partner file drop (:mod:`lytics_provider.files.export_partner`), following the
Lytics BlueKai page:

- the offline file is gzip TSV with no header row, a line per user: the **Identifier**, a tab,
  then ``field=value`` pairs joined by ``|``: the **Fields to Export**, then ``<audience slug>=1``
  for each audience in **Audience membership** the user belongs to (every audience of the user
  when none is listed), ``segment_name=<name>`` with **Append Segment Name** and
  ``segments=<a&b>`` with **Additional Segments**; multi-value fields are joined by **Custom Join**;
- ``<offline file>.trigger`` holds the offline file's name, size in bytes and MD5 (one a line)
  and is uploaded only after the offline file is complete under its final name.

Partner name and site id name the file; the date is the run's logical date (UTC).
"""

from __future__ import annotations

from typing import Any

from lytics_provider.files.export_layout import FileLayout
from lytics_provider.files.export_membership import MembershipPairs
from lytics_provider.files.export_naming import NameTemplate
from lytics_provider.files.export_partner import PartnerDropOperator, PartnerRun
from lytics_provider.files.export_preset import FileDropPreset
from lytics_provider.files.export_trigger import TriggerFile
from lytics_provider.transfers.lytics_to_sftp import IdentifierCheck

OFFLINE_FILE = "{partner_name}_{site_id}_{date}"
TRIGGER = TriggerFile(".trigger", "{name}\n{size}\n{md5}\n")


def bluekai(run: PartnerRun) -> FileDropPreset:
    """Offline file (gz TSV ``id<TAB>f=v|...``) and its trigger."""
    fields = tuple(f for f in run.chosen_fields or () if f != run.identifier)
    pairs = MembershipPairs(run.identifier, fields, run.extras(every_audience=True))
    layout = FileLayout(
        ("id", "attributes"),
        delimiter="\t",
        header_row=False,
        row_check=IdentifierCheck(run.identifier),
        cells=pairs,
    )
    values = {"partner_name": str(run.options["partner_name"]), "site_id": str(run.options["site_id"])}
    return FileDropPreset(layout, NameTemplate(OFFLINE_FILE, values=values), "gz", TRIGGER)


class BlueKaiExportOperator(PartnerDropOperator):
    """BlueKai Export Audiences over SFTP (see the module docstring).

    :param partner_name: the name BlueKai knows the account by (first part of the file name).
    :param site_id: the site id of the BlueKai container (second part of the file name).
    """

    partner_format = staticmethod(bluekai)

    def __init__(self, *, partner_name: str, site_id: str, **kwargs: Any) -> None:
        super().__init__(partner_options={"partner_name": partner_name, "site_id": site_id}, **kwargs)
        self.partner_name = partner_name
        self.site_id = site_id
