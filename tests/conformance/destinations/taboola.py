"""Taboola: a membership CSV per run in S3 of the members with a Taboola ID, keyed by that id.

The synthetic account has no ``taboola_ids``; the stand-in adds one (``tb-<_uid>``) to each member
with a valid email for the test, so the members without one are the rejects.
"""

from __future__ import annotations

from typing import Any

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, csv_column
from tests.conformance.destinations._partner_s3 import s3_drop_target


def with_taboola_id(profile: dict[str, Any]) -> dict[str, Any]:
    if "@" in str(profile.get("email") or ""):
        return {**profile, "taboola_ids": [f"tb-{profile['_uid']}"]}
    return profile


def taboola_id(member: dict[str, Any]) -> str | None:
    ids = member.get("taboola_ids") or []
    return ids[0] if ids else None


def taboola(stands: Stands) -> Target:
    edit = stands.lytics.profile_edit
    stands.monkeypatch.setattr(
        stands.lytics, "profile_edit", with_taboola_id if edit is None else lambda p: with_taboola_id(edit(p))
    )
    config = {"type": "taboola_export", "audience": AUDIENCE}
    return s3_drop_target(stands, config, lambda body: csv_column(body, 0))


DESTINATION = Destination(
    "taboola_export", "taboola_export", "replace", taboola, taboola_id, stand="moto_endpoint"
)
