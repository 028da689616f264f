"""Member identity: which field keys a member in a snapshot, and how its key reads.

A job names an ordered list of identity fields (``identity_fields``); the first one a member
has (present and not empty) is its key. The key of ``_uid`` is the raw value, exactly as
snapshots stored it before identity fields existed, so an older baseline still diffs cleanly.
Any other field's key is the field name, a colon and the value (``email:ann@example.com``), so
a value of one field never collides with a value of another.

A member whose key field changes between two runs (it had no ``_uid`` last run and has one now,
or the field it was keyed by was emptied) has a different key: the diff reports it as one exit
(old key) and one enter (new key). A destination keyed by email treats the pair as a no-op when
the email stayed the same (see ``operators.dotdigital``).
"""

from __future__ import annotations

from collections.abc import Sequence

UID = "_uid"
DEFAULT_IDENTITY_FIELDS: tuple[str, ...] = (UID, "email")


def normalize_identity_fields(fields: Sequence[str] | str | None) -> list[str]:
    """The identity fields as a clean list (default ``_uid`` then ``email``); ValueError when unusable."""
    if fields is None:
        return list(DEFAULT_IDENTITY_FIELDS)
    items = [fields] if isinstance(fields, str) else list(fields)
    names = [str(name).strip() for name in items]
    if not names or any(not name for name in names):
        raise ValueError("identity_fields needs at least one non-empty field name, e.g. [_uid, email]")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"identity_fields lists {', '.join(repeated)} more than once; list each field once")
    return names


def json_path(field: str) -> str:
    """SQLite JSON path of a (dotted) field: ``a.b`` -> ``$."a"."b"``."""
    return "$" + "".join('."' + part.replace('"', '\\"') + '"' for part in field.split("."))


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def key_sql(fields: Sequence[str], record: str) -> str:
    """SQL expression of a member's key from the JSON text ``record`` (NULL: no identity)."""
    terms = []
    for field in fields:
        value = f"NULLIF(CAST(json_extract({record}, {_sql_text(json_path(field))}) AS TEXT), '')"
        terms.append(value if field == UID else f"{_sql_text(field + ':')} || {value}")
    return terms[0] if len(terms) == 1 else "COALESCE(" + ", ".join(terms) + ")"


def scan_field_names(fields: Sequence[str]) -> list[str]:
    """The top-level Lytics fields a scan must request to read the identity fields."""
    return list(dict.fromkeys(field.split(".")[0] for field in fields))


def no_identity_reason(fields: Sequence[str]) -> str:
    """The rejects-file reason of a member without any identity field."""
    return f"no identity: none of {', '.join(fields)} present"
