"""BlueKai: a gz TSV offline file per run on SFTP (plus its trigger), keyed by the email in column 1."""

from __future__ import annotations

import gzip

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, valid_email
from tests.conformance.destinations._sftp_drop import sftp_drop_target


def offline_file_ids(body: bytes) -> list[str]:
    return [line.split("\t", 1)[0] for line in gzip.decompress(body).decode("utf-8").splitlines()]


def bluekai(stands: Stands) -> Target:
    config = {
        "type": "bluekai_export",
        "audience": AUDIENCE,
        "partner_name": "Lytics",
        "site_id": "123",
        "fields_to_export": ["first_name"],
    }
    return sftp_drop_target(stands, config, offline_file_ids, pattern="*.gz")


DESTINATION = Destination(
    "bluekai_export", "bluekai_export", "replace", bluekai, valid_email, stand="sftp_stand"
)
