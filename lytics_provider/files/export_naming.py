"""File names of exports: the run's one moment, stamp formats, safe name parts, name templates.

Every attempt of a run must write the same names, so the stamp comes from the run, never from the
clock: the logical date, else the data interval end, else the run's ``run_after`` (runs
triggered without a logical date), in UTC. Presets choose how the moment is spelled.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lytics_provider.pipeline.compression import compressed_name
from lytics_provider.pipeline.pgp import encrypted_name

COMPACT_STAMP = "%Y%m%d%H%M%S"
"""``20261123000000``: the SFTP file drops (Mapp, File Service)."""
ISO_BASIC_STAMP = "%Y%m%dT%H%M%SZ"
"""``20261123T000000Z``: the object-store exports (S3, GCS)."""
DATE_STAMP = "%Y-%m-%d"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def run_moment(context: Mapping[str, Any]) -> datetime:
    """The moment naming this run's files, in UTC (see the module docstring)."""
    moment = context.get("logical_date") or context.get("data_interval_end")
    if moment is None:
        moment = getattr(context.get("dag_run"), "run_after", None)
    if moment is None:
        raise ValueError(
            "cannot name the export file: the run has no logical date, data interval end or run_after"
        )
    if not isinstance(moment, datetime):
        moment = datetime.fromisoformat(str(moment))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def run_stamp(context: Mapping[str, Any], stamp_format: str = ISO_BASIC_STAMP) -> str:
    """The run's moment spelled with ``stamp_format`` (UTC)."""
    return run_moment(context).strftime(stamp_format)


def file_name_part(text: str, limit: int = 100) -> str:
    """Render an audience name or slug for a file name.

    Accents are folded to ASCII ("Café" → "Cafe"), every run of characters other than ASCII
    letters, digits, ``_`` and ``-`` (spaces, ``/``, dots, quotes, ...) becomes one ``_``, leading
    and trailing ``_`` are dropped, case is kept, and the result is cut to ``limit`` characters:
    "High Value (EU)" → "High_Value_EU".
    """
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    rendered = _UNSAFE.sub("_", folded).strip("_")[:limit].strip("_")
    return rendered or "audience"


@dataclass(frozen=True)
class NameTemplate:
    """A file name template and how its fields are filled.

    Fields: ``{slug}`` (audience slug, else id), ``{name}`` (audience name, else slug, else id),
    ``{id}``, ``{timestamp}`` (the run's moment in ``stamp_format``), ``{date}`` (``YYYY-MM-DD``),
    ``{ext}`` (the layout's extension) and any key of ``values`` (e.g. a partner's site id).
    With ``safe_parts`` the audience fields pass through :func:`file_name_part`. Compression
    (``.gz``, or ``.zip`` in place of the extension) and ``.pgp`` are appended by :meth:`render`.
    """

    template: str
    stamp_format: str = ISO_BASIC_STAMP
    safe_parts: bool = False
    values: Mapping[str, str] = field(default_factory=dict)

    def base_name(self, audience: Mapping[str, Any], moment: datetime, ext: str) -> str:
        """The name before compression and encryption."""
        ident = str(audience.get("id") or "audience")
        slug = str(audience.get("slug") or ident)
        name = str(audience.get("name") or slug)
        if self.safe_parts:
            ident, slug, name = file_name_part(ident), file_name_part(slug), file_name_part(name)
        fields = {
            **self.values,
            "id": ident,
            "slug": slug,
            "name": name,
            "timestamp": moment.strftime(self.stamp_format),
            "date": moment.strftime(DATE_STAMP),
            "ext": ext,
        }
        try:
            rendered = self.template.format(**fields)
        except (KeyError, IndexError) as exc:
            raise ValueError(
                f"file name template {self.template!r} uses {exc}; use only "
                + ", ".join(f"{{{key}}}" for key in fields)
            ) from None
        if not rendered.strip():
            raise ValueError(f"file name template {self.template!r} renders an empty name")
        return rendered

    def render(
        self, audience: Mapping[str, Any], moment: datetime, ext: str, compression: str, encrypted: bool
    ) -> tuple[str, str]:
        """``(base name, final name)``: the final name carries the compression and ``.pgp``."""
        base = self.base_name(audience, moment, ext)
        final = compressed_name(base, compression)
        return base, encrypted_name(final) if encrypted else final
