"""The ``filename`` option of the audience exports that write one file per run."""

from __future__ import annotations

from pydantic import Field, field_validator

from lytics_provider.jobs.base import StrictModel


class FileNameTemplate(StrictModel):
    """``filename``: the name template of the file a run writes (each run its own file)."""

    filename: str = Field(
        default="lytics_{slug}_{timestamp}.{ext}",
        description="File name template: {slug} audience slug, {timestamp} run time (UTC), {ext}.",
    )

    @field_validator("filename")
    @classmethod
    def _check_template(cls, value: str) -> str:
        if "{timestamp}" not in value:
            raise ValueError("filename must contain {timestamp} so each run writes its own file")
        try:
            value.format(slug="s", timestamp="t", ext="csv")
        except (KeyError, IndexError, ValueError):
            raise ValueError("filename may only use {slug}, {timestamp} and {ext}") from None
        return value
