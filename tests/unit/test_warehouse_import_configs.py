"""Warehouse table imports: the watermark or ``full_reload``, and the errors that name the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from lytics_provider.jobs.errors import JobConfigError
from lytics_provider.jobs.loader import load_job_file


def _load(tmp_path: Path, text: str):
    path = tmp_path / "jobs" / "warehouse.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return load_job_file(path)


@pytest.mark.parametrize("kind", ["redshift_import", "snowflake_import", "bigquery_import"])
def test_full_reload_needs_no_modified_timestamp_field(tmp_path: Path, kind: str) -> None:
    config = _load(tmp_path, f"type: {kind}\nsource: s.contacts\nstream: contacts\nfull_reload: true\n")
    assert config.full_reload and config.modified_timestamp_field is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "",
            "modified_timestamp_field is missing: name the table's modified-timestamp column, or set "
            "full_reload: true for a table without one",
        ),
        ("full_reload: true\nmodified_timestamp_field: updated_at\n", "remove modified_timestamp_field"),
        ("full_reload: true\nevents_since: '2026-01-01T00:00:00+00:00'\n", "events_since needs a"),
    ],
)
def test_watermark_or_full_reload_errors_name_file_field_and_fix(
    tmp_path: Path, extra: str, message: str
) -> None:
    with pytest.raises(JobConfigError) as caught:
        _load(tmp_path, "type: redshift_import\nsource: contacts\n" + extra)
    assert "warehouse.yaml" in str(caught.value) and message in str(caught.value)
