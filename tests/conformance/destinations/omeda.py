"""Omeda: a CSV per run on SFTP named by the run's date and time, keyed by the email in column 1."""

from __future__ import annotations

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, csv_column, valid_email
from tests.conformance.destinations._sftp_drop import sftp_drop_target


def omeda(stands: Stands) -> Target:
    config = {"type": "omeda_export", "audience": AUDIENCE, "fields_to_export": ["email", "first_name"]}
    return sftp_drop_target(stands, config, lambda body: csv_column(body, 0))


DESTINATION = Destination("omeda_export", "omeda_export", "replace", omeda, valid_email, stand="sftp_stand")
