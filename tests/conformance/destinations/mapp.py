"""Mapp SFTP export: a CSV file per run on SFTP, keyed by email."""

from __future__ import annotations

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, csv_column, valid_email
from tests.conformance.destinations._sftp_drop import sftp_drop_target


def mapp(stands: Stands) -> Target:
    config = {
        "type": "mapp_sftp_export",
        "audience": AUDIENCE,
        "identifier_field": "email",
        "field_mapping": {"email": "user.Email", "first_name": "user.FirstName"},
    }
    return sftp_drop_target(stands, config, lambda body: csv_column(body, 0))


DESTINATION = Destination(
    "mapp_sftp_export", "mapp_sftp_export", "replace", mapp, valid_email, stand="sftp_stand"
)
