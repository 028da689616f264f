"""Lotame: a membership CSV per run on SFTP, keyed by ``_uid`` (the cookie-exchange id)."""

from __future__ import annotations

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, csv_column, uid
from tests.conformance.destinations._sftp_drop import sftp_drop_target


def lotame(stands: Stands) -> Target:
    config = {"type": "lotame_export", "audience": AUDIENCE, "audience_membership": [AUDIENCE, "all_users"]}
    return sftp_drop_target(stands, config, lambda body: csv_column(body, "_uid"))


DESTINATION = Destination(
    "lotame_export", "lotame_export", "replace", lotame, uid, rejects=False, stand="sftp_stand"
)
