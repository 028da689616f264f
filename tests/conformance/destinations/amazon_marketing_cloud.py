"""Amazon Marketing Cloud: hashed match keys of the current members per run in S3, keyed by the email hash."""

from __future__ import annotations

import hashlib
from typing import Any

from tests.conformance.destinations import AUDIENCE, Destination, Stands, Target, csv_column, valid_email
from tests.conformance.destinations._partner_s3 import s3_drop_target


def email_hash(member: dict[str, Any]) -> str | None:
    email = valid_email(member)
    return hashlib.sha256(email.strip().lower().encode()).hexdigest() if email else None


def amazon_marketing_cloud(stands: Stands) -> Target:
    config = {
        "type": "amazon_marketing_cloud_export",
        "audience": AUDIENCE,
        "identifiers": {"email": "email"},
    }
    return s3_drop_target(stands, config, lambda body: csv_column(body, "email"))


DESTINATION = Destination(
    "amazon_marketing_cloud_export",
    "amazon_marketing_cloud_export",
    "replace",
    amazon_marketing_cloud,
    email_hash,
    stand="moto_endpoint",
)
