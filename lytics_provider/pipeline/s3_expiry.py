"""Staged S3 objects that expire by themselves: an object tag and the bucket's lifecycle rule for it.

A kept staged file is uploaded with the tag ``lytics-staged=expire`` and the bucket gets (once)
the lifecycle rule ``lytics-staged-expiry``: objects carrying that tag expire after ``days``
days. S3 removes them itself, whether or not the job runs again. S3 counts lifecycle days from
the object's creation, rounded up to the next midnight UTC, so a file kept with ``days=3`` is
removed between 72 and 96 hours after upload (S3 runs the removal asynchronously; an expired
object may be listed a little longer but is no longer billed).

The bucket's other lifecycle rules are kept: the configuration is read, the rule added (or
replaced when its days differ) and written back. Reading or writing it needs
``s3:GetLifecycleConfiguration`` and ``s3:PutLifecycleConfiguration``; without them the error
says what to grant, or which rule to add by hand.
"""

from __future__ import annotations

from typing import Any

EXPIRY_TAG_KEY = "lytics-staged"
EXPIRY_TAG_VALUE = "expire"
RULE_ID = "lytics-staged-expiry"


def expiry_tagging() -> str:
    """The ``Tagging`` upload argument of a staged object that is to expire."""
    return f"{EXPIRY_TAG_KEY}={EXPIRY_TAG_VALUE}"


def expiry_rule(days: int) -> dict[str, Any]:
    """The lifecycle rule expiring tagged staged objects after ``days`` days."""
    return {
        "ID": RULE_ID,
        "Status": "Enabled",
        "Filter": {"Tag": {"Key": EXPIRY_TAG_KEY, "Value": EXPIRY_TAG_VALUE}},
        "Expiration": {"Days": days},
    }


def ensure_expiry_rule(client: Any, bucket: str, days: int) -> bool:
    """Make sure ``bucket`` expires tagged staged objects after ``days`` days; ``True`` when the
    rule was written now, ``False`` when it was there already.

    :param client: a boto3 S3 client.
    :param bucket: the staging bucket.
    :param days: days after which S3 removes a tagged object.
    """
    from botocore.exceptions import ClientError

    wanted = expiry_rule(days)
    try:
        try:
            rules = client.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
                raise
            rules = []
        if any(_same(rule, wanted) for rule in rules):
            return False
        rules = [rule for rule in rules if rule.get("ID") != RULE_ID] + [wanted]
        client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
    except ClientError as exc:
        raise PermissionError(
            f"cannot set the {days}-day expiry of kept staged files on bucket {bucket!r} "
            f"({exc.response.get('Error', {}).get('Code')}): grant s3:GetLifecycleConfiguration and "
            f"s3:PutLifecycleConfiguration, add the lifecycle rule {RULE_ID!r} (objects tagged "
            f"{expiry_tagging()} expire after {days} days) yourself, or set keep_staged: false"
        ) from exc
    return True


def _same(rule: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(rule.get(key) == value for key, value in wanted.items())
