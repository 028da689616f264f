"""Selligent: a CSV per run on SFTP for a Message Studio recurring import, keyed by the email in column 1."""

from __future__ import annotations

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, csv_column, valid_email
from tests.conformance.destinations._sftp_drop import sftp_drop_target


def selligent(stands: Stands) -> Target:
    config = {"type": "selligent_export", "audience": AUDIENCE, "fields_to_export": ["email", "first_name"]}
    return sftp_drop_target(stands, config, lambda body: csv_column(body, 0))


DESTINATION = Destination(
    "selligent_export", "selligent_export", "replace", selligent, valid_email, stand="sftp_stand"
)
