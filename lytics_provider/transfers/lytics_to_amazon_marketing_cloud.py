"""Amazon Marketing Cloud: Advertiser Data Upload, as hashed match keys in the AMC instance's S3 bucket.

A preset of the partner file drop (:mod:`lytics_provider.files.export_partner`). Each run writes
the members currently in the audience, so the newest file replaces the previous one and members
who left the audience are no longer in it (the Lytics page: "As profiles fall out of the audience
in Lytics they will be removed"). A header row names the match keys (``email``, ``phone``,
``first_name``, ``last_name``, ``address``, ``city``, ``state``, ``postal_code``); each cell is
the lower-case hex SHA-256 of the value normalised for its kind and the chosen **country**
(:func:`lytics_provider.sync.identifiers.normalized_match_key`), empty when the member has none.
A member with no usable match key goes to the rejects file. Normalisation follows the rules of
Amazon's AMC uploader solution (github.com/aws-solutions/amazon-marketing-cloud-uploader-from-aws):
email trimmed and lower-cased, phone as E.164 digits, US ZIP as five digits, other text lower-cased
letters and digits only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lytics_provider.files.export_hashing import AnyMatchKey, HashedMatchKeys
from lytics_provider.files.export_layout import FileLayout
from lytics_provider.files.export_naming import COMPACT_STAMP, NameTemplate
from lytics_provider.files.export_partner import PartnerDropOperator, PartnerRun
from lytics_provider.files.export_preset import FileDropPreset
from lytics_provider.sync.identifiers import MATCH_KEYS

NAME = NameTemplate("lytics_amc_{slug}_{timestamp}.csv", COMPACT_STAMP, safe_parts=True)
DEFAULT_IDENTIFIERS = {"email": "email"}


def amazon_marketing_cloud(run: PartnerRun) -> FileDropPreset:
    """A column of hashed match keys per identifier."""
    identifiers: Mapping[str, str] = run.options["identifiers"]
    keys = HashedMatchKeys(tuple(identifiers.items()), str(run.options["country"]))
    layout = FileLayout(keys.header(), row_check=AnyMatchKey(keys), cells=keys)
    return FileDropPreset(layout, NAME)


class AmazonMarketingCloudExportOperator(PartnerDropOperator):
    """Amazon Marketing Cloud: Advertiser Data Upload (see the module docstring).

    :param identifiers: match key -> Lytics field, e.g. ``{"email": "email", "phone": "phone"}``.
    :param country: ISO country the identifiers are normalised for (one country per audience
        when Address, Phone or Postal Code are sent).
    """

    partner_format = staticmethod(amazon_marketing_cloud)

    def __init__(
        self, *, identifiers: Mapping[str, str] | None = None, country: str = "US", **kwargs: Any
    ) -> None:
        identifiers = dict(identifiers or DEFAULT_IDENTIFIERS)
        unknown = sorted(set(identifiers) - set(MATCH_KEYS))
        if unknown:
            raise ValueError(f"unknown match key(s) {', '.join(unknown)}; use {', '.join(MATCH_KEYS)}")
        super().__init__(partner_options={"identifiers": identifiers, "country": country}, **kwargs)
        self.identifiers = identifiers
        self.country = country
