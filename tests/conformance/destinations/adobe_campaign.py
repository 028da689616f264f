"""Adobe Campaign: an hourly or daily CSV on SFTP, keyed by the email in column 1."""

from __future__ import annotations

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, csv_column, valid_email
from tests.conformance.destinations._sftp_drop import sftp_drop_target


def adobe_campaign(stands: Stands) -> Target:
    config = {
        "type": "adobe_campaign_export",
        "audience": AUDIENCE,
        "fields_to_export": ["email", "first_name"],
    }
    return sftp_drop_target(stands, config, lambda body: csv_column(body, 0))


DESTINATION = Destination(
    "adobe_campaign_export",
    "adobe_campaign_export",
    "replace",
    adobe_campaign,
    valid_email,
    stand="sftp_stand",
)
