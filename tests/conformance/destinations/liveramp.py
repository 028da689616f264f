"""LiveRamp: the LiveRamp CSV per run on SFTP and in S3, keyed by the identifier (email) in column 1."""

from __future__ import annotations

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, csv_column, valid_email
from tests.conformance.destinations._partner_s3 import s3_drop_target
from tests.conformance.destinations._sftp_drop import sftp_drop_target

OPTIONS = {"audience": AUDIENCE, "identifier": "email", "fields_to_export": ["email", "first_name"]}


def liveramp_sftp(stands: Stands) -> Target:
    config = {"type": "liveramp_sftp_export", **OPTIONS, "append_segment_name": True}
    return sftp_drop_target(stands, config, lambda body: csv_column(body, 0))


def liveramp_s3(stands: Stands) -> Target:
    config = {"type": "liveramp_s3_export", **OPTIONS, "additional_segments": True}
    return s3_drop_target(stands, config, lambda body: csv_column(body, 0))


def liveramp_identifier(stands: Stands) -> Target:
    config = {"type": "liveramp_identifier_export", "audience": AUDIENCE, "identifier": "email"}
    return sftp_drop_target(stands, config, lambda body: csv_column(body, 0))


DESTINATIONS = [
    Destination(
        "liveramp_sftp_export",
        "liveramp_sftp_export",
        "replace",
        liveramp_sftp,
        valid_email,
        stand="sftp_stand",
    ),
    Destination(
        "liveramp_s3_export", "liveramp_s3_export", "replace", liveramp_s3, valid_email, stand="moto_endpoint"
    ),
    Destination(
        "liveramp_identifier_export",
        "liveramp_identifier_export",
        "replace",
        liveramp_identifier,
        valid_email,
        stand="sftp_stand",
    ),
]
