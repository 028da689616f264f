"""Audience file drops on SFTP: Mapp SFTP Export and the Lytics File Service CSV export.

Both are presets of the file-drop engine (:class:`~lytics_provider.files.export_operator.
SftpFileDropOperator`): a layout and a name template. They run as the ``deliver`` task after
``scan`` (``LyticsAudienceScanOperator``) and before ``report`` (``LyticsCommitRunOperator``),
stream the scan's snapshot into a CSV staged in the run directory, optionally compress it
(gz / zip) and encrypt it (PGP), then upload it atomically (``.<name>.part`` + rename).

File names carry a timestamp of the run, rendered in UTC as ``%Y%m%d%H%M%S`` from the run's
logical date (see :mod:`lytics_provider.files.export_naming`), so every attempt of a run writes
the same name.

Returned report (XCom): ``rows``, ``rejected``, ``bytes``, ``file_name``, ``remote_path``,
``rejects_file``, ``dry_run``, ``upload_seconds`` (and the engine's other keys).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lytics_provider.files.export_layout import FileLayout
from lytics_provider.files.export_naming import COMPACT_STAMP, NameTemplate
from lytics_provider.files.export_operator import SftpFileDropOperator
from lytics_provider.files.export_preset import FileDropPreset
from lytics_provider.pipeline.csv_render import RowRejected

MAPP_MEMBERSHIP_HEADER = "user.CustomAttribute.SegmentMembership"
MEMBERSHIP_FIELD = "segments"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class IdentifierCheck:
    """Reject records without the identifier (or, for ``email``, without a valid address)."""

    field: str

    def __call__(self, record: Mapping[str, Any]) -> None:
        identifier = record.get(self.field)
        text = identifier.strip() if isinstance(identifier, str) else identifier
        if text is None or text == "":
            raise RowRejected(f"missing identifier: no {self.field!r} value")
        if self.field == "email" and not _EMAIL.match(text if type(text) is str else str(text).strip()):
            raise RowRejected("invalid email address in 'email'")


class MappSftpExportOperator(SftpFileDropOperator):
    """Mapp SFTP Export: ``export-lytics-{audience name}-{timestamp}.csv`` with Mapp headers.

    Columns: the identifier first, then the other **Fields Mapping** entries in their order,
    then ``user.CustomAttribute.SegmentMembership`` (the member's audiences, comma-separated)
    unless ``include_membership`` is false. Members without the identifier (or, for ``email``,
    without a valid address) go to the rejects file. Every run's file holds the whole audience
    (add only; Mapp never removes anyone because of this file).

    :param field_mapping: Lytics field → Mapp header name, e.g. ``{"email": "user.Email"}``.
    :param identifier_field: the Lytics field identifying the user (must be in the mapping).
    :param include_membership: add the membership column.
    :param compression: ``none``, ``gz`` (``.csv.gz``) or ``zip`` (``.zip`` holding the ``.csv``).
    :param pgp_conn_id: a ``lytics_pgp`` connection; when set the file is encrypted for its
        public key and ``.pgp`` is appended to the name.
    """

    def __init__(
        self,
        *,
        field_mapping: Mapping[str, str],
        identifier_field: str = "email",
        include_membership: bool = True,
        compression: str = "none",
        **kwargs: Any,
    ) -> None:
        columns, headers = mapp_layout(dict(field_mapping), identifier_field, include_membership)
        layout = FileLayout(tuple(columns), tuple(headers), row_check=IdentifierCheck(identifier_field))
        name = NameTemplate("export-lytics-{name}-{timestamp}.csv", COMPACT_STAMP, safe_parts=True)
        super().__init__(preset=FileDropPreset(layout, name, compression), **kwargs)
        self.field_mapping = dict(field_mapping)
        self.identifier_field = identifier_field
        self.include_membership = include_membership


def mapp_layout(
    field_mapping: Mapping[str, str], identifier_field: str, include_membership: bool
) -> tuple[list[str], list[str]]:
    """``(Lytics columns, Mapp headers)`` of a Mapp export; raises ValueError on a bad mapping."""
    if not field_mapping:
        raise ValueError("field_mapping is empty: map at least the identifier, e.g. `email: user.Email`")
    if identifier_field not in field_mapping:
        raise ValueError(
            f"identifier_field {identifier_field!r} is not in field_mapping; add its Mapp header, "
            f"e.g. `{identifier_field}: user.Email`"
        )
    columns = [identifier_field, *(name for name in field_mapping if name != identifier_field)]
    headers = [field_mapping[name] for name in columns]
    if include_membership:
        columns.append(MEMBERSHIP_FIELD)
        headers.append(MAPP_MEMBERSHIP_HEADER)
    seen: set[str] = set()
    for header in headers:
        if not header or not str(header).strip():
            raise ValueError("field_mapping has an empty Mapp header name")
        if header in seen:
            raise ValueError(
                f"Mapp header {header!r} appears twice"
                + (" (it is added by include_membership)" if header == MAPP_MEMBERSHIP_HEADER else "")
            )
        seen.add(header)
    return columns, headers


def mapp_scan_fields(field_mapping: Mapping[str, str], identifier_field: str) -> list[str]:
    """The Lytics fields a Mapp export reads from each member."""
    return list(dict.fromkeys([identifier_field, *field_mapping, MEMBERSHIP_FIELD]))


class LyticsFileServiceExportOperator(SftpFileDropOperator):
    """Lytics File Service CSV export: ``lytics_{segment_slug}_{date_time}.csv``.

    Columns are ``fields`` in the given order, or, when ``fields`` is empty, every field of the
    account's ``user`` schema (``GET /v2/schema/user/field``) in schema order, so the header is
    known before the first row; values of fields outside that list are not exported. Lists are
    comma-joined, maps are JSON, missing values are empty cells.

    :param fields: Lytics fields to export, in column order (default: the user schema's).
    :param compression: ``none``, ``gz`` (``.csv.gz``) or ``zip`` (``.zip`` holding the ``.csv``).
    :param pgp_conn_id: a ``lytics_pgp`` connection; when set the file is encrypted for its
        public key and ``.pgp`` is appended to the name.
    """

    def __init__(
        self, *, fields: Sequence[str] | None = None, compression: str = "none", **kwargs: Any
    ) -> None:
        name = NameTemplate("lytics_{slug}_{timestamp}.csv", COMPACT_STAMP, safe_parts=True)
        super().__init__(fields=fields, preset=FileDropPreset(None, name, compression), **kwargs)

    def file_layout(self) -> FileLayout:
        if self.fields:
            return FileLayout(tuple(self.fields))
        from lytics_provider.hooks.lytics import LyticsHook

        names = [
            str(field["id"])
            for field in LyticsHook(self.lytics_conn_id).get_schema_fields()
            if field.get("id")
        ]
        if not names:
            raise ValueError("the Lytics user schema lists no fields; set `fields` on the job")
        return FileLayout(tuple(names))
