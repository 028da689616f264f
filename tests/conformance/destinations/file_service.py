"""Lytics File Service export: a gzip CSV per run on SFTP, keyed by ``_uid``."""

from __future__ import annotations

import gzip

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, csv_column, uid
from tests.conformance.destinations._sftp_drop import sftp_drop_target


def file_service(stands: Stands) -> Target:
    config = {
        "type": "file_service_export",
        "audience": AUDIENCE,
        "fields": ["_uid", "email", "first_name"],
        "compression": "gz",
    }
    return sftp_drop_target(stands, config, lambda body: csv_column(gzip.decompress(body), "_uid"))


DESTINATION = Destination(
    "file_service_export",
    "file_service_export",
    "replace",
    file_service,
    uid,
    rejects=False,
    stand="sftp_stand",
)
