"""Streaming writers, compression, rejects files and file-name rules of the file drops."""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import zipfile
from datetime import datetime
from pathlib import Path

import pendulum
import pytest

from lytics_provider.files.export_naming import COMPACT_STAMP, file_name_part, run_stamp
from lytics_provider.pipeline.compression import (
    compress_to,
    compressed_name,
    detect_compression,
    open_decompressed,
)
from lytics_provider.pipeline.rejects import RejectsWriter
from lytics_provider.pipeline.writers import CsvWriter, JsonlWriter, format_csv_value
from lytics_provider.transfers.lytics_to_sftp import mapp_layout


def run_timestamp(context: dict) -> str:
    """The SFTP file drops' spelling of the run stamp."""
    return run_stamp(context, COMPACT_STAMP)


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (None, ""),
        (["high_value", "all_users"], "high_value,all_users"),
        ({"momentum": 1.5, "b": [1, 2]}, '{"momentum":1.5,"b":[1,2]}'),
        (True, "true"),
        (False, "false"),
        (42, "42"),
        ("Zoë", "Zoë"),
        ([None, 3], ",3"),
    ],
)
def test_csv_cell_rules(value: object, cell: str) -> None:
    assert format_csv_value(value) == cell


def test_csv_writer_round_trips_through_the_csv_module() -> None:
    records = [
        {"email": "a@example.com", "segments": ["x", "y"], "scores": {"m": 1}, "note": 'say "hi",\nbye'},
        {"email": "b@example.com", "segments": None},
    ]
    target = io.BytesIO()
    with CsvWriter(target, ["email", "segments", "scores", "note"], ["user.Email", "Segs", "S", "N"]) as w:
        w.write_all(records)
    assert w.rows == 2
    assert w.bytes_written == len(target.getvalue())
    assert not target.closed
    rows = list(csv.reader(io.StringIO(target.getvalue().decode("utf-8"), newline="")))
    assert rows == [
        ["user.Email", "Segs", "S", "N"],
        ["a@example.com", "x,y", '{"m":1}', 'say "hi",\nbye'],
        ["b@example.com", "", "", ""],
    ]
    assert target.getvalue().endswith(b"\r\n")


def test_csv_writer_refuses_a_header_of_another_width() -> None:
    with pytest.raises(ValueError, match="2 names for 1 columns"):
        CsvWriter(io.BytesIO(), ["a"], ["x", "y"])


def test_jsonl_writer_writes_one_compact_object_per_line() -> None:
    target = io.BytesIO()
    with JsonlWriter(target) as writer:
        writer.write({"a": 1, "b": "é"})
        writer.write({"c": [1, 2]})
    lines = target.getvalue().decode().splitlines()
    assert [json.loads(line) for line in lines] == [{"a": 1, "b": "é"}, {"c": [1, 2]}]
    assert writer.rows == 2


@pytest.mark.parametrize("compression", ["none", "gz", "zip"])
def test_compression_round_trip_and_names(tmp_path: Path, compression: str) -> None:
    payload = b"email\r\n" + b"x@example.com\r\n" * 10_000
    name = compressed_name("lytics_a_1.csv", compression)
    assert name == {"none": "lytics_a_1.csv", "gz": "lytics_a_1.csv.gz", "zip": "lytics_a_1.zip"}[compression]
    path = tmp_path / name
    with open(path, "wb") as raw, compress_to(raw, compression, "lytics_a_1.csv") as stream:
        for start in range(0, len(payload), 4096):
            stream.write(payload[start : start + 4096])
    assert detect_compression(name) == compression
    with open_decompressed(path, compression) as handle:
        assert handle.read() == payload
    if compression == "zip":
        assert zipfile.ZipFile(path).namelist() == ["lytics_a_1.csv"]
    if compression != "none":
        assert path.stat().st_size < len(payload) / 5


def test_gzip_output_is_byte_identical_on_a_retry(tmp_path: Path) -> None:
    outputs = []
    for attempt in range(2):
        target = io.BytesIO()
        with compress_to(target, "gz", "x.csv") as stream:
            stream.write(b"same rows\n" * 100)
        outputs.append(target.getvalue())
        assert gzip.decompress(target.getvalue()) == b"same rows\n" * 100, attempt
    assert outputs[0] == outputs[1]


def test_zip_import_with_two_files_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.csv", "x")
        archive.writestr("b.csv", "y")
    with pytest.raises(ValueError, match="exactly one file"), open_decompressed(path, "zip"):
        pass


def test_rejects_file_lines_and_log_preview(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "rejects.jsonl"
    secret_row = {"email": "", "first_name": "Private Person", "ssn": "123-45-6789"}
    with caplog.at_level(logging.WARNING), RejectsWriter(path, preview_lines=1) as rejects:
        rejects.reject("missing identifier: no 'email' value", 3, secret_row, id="uid-1")
        rejects.reject("missing identifier: no 'email' value", 7, secret_row, id="uid-2")
        assert not path.exists()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [
        {
            "reason": "missing identifier: no 'email' value",
            "row_number": 3,
            "id": "uid-1",
            "record": secret_row,
        },
        {
            "reason": "missing identifier: no 'email' value",
            "row_number": 7,
            "id": "uid-2",
            "record": secret_row,
        },
    ]
    assert "uid-1" in caplog.text and "2 rows rejected" in caplog.text
    assert "Private Person" not in caplog.text and "123-45-6789" not in caplog.text
    assert not list(tmp_path.glob(".*.part"))


def test_rejects_file_is_dropped_when_the_step_fails(tmp_path: Path) -> None:
    path = tmp_path / "rejects.jsonl"
    with pytest.raises(RuntimeError), RejectsWriter(path) as rejects:
        rejects.reject("bad", 1, {})
        raise RuntimeError("boom")
    assert not path.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("name", "rendered"),
    [
        ("High Value", "High_Value"),
        ("High Value (EU) / Q3", "High_Value_EU_Q3"),
        ("Café crème", "Cafe_creme"),
        ("../../etc", "etc"),
        ("???", "audience"),
    ],
)
def test_audience_name_rendering_is_file_name_safe(name: str, rendered: str) -> None:
    assert file_name_part(name) == rendered


def test_run_timestamp_is_utc_and_falls_back_to_run_after() -> None:
    berlin = pendulum.datetime(2026, 3, 29, 6, 0, tz="Europe/Berlin")
    assert run_timestamp({"logical_date": berlin}) == "20260329040000"

    class DagRun:
        run_after = datetime(2026, 1, 2, 3, 4, 5)

    assert (
        run_timestamp({"logical_date": None, "data_interval_end": None, "dag_run": DagRun()})
        == "20260102030405"
    )
    with pytest.raises(ValueError, match="no logical date"):
        run_timestamp({"logical_date": None, "dag_run": None})


def test_mapp_layout_puts_identifier_first_and_membership_last() -> None:
    columns, headers = mapp_layout({"first_name": "user.FirstName", "email": "user.Email"}, "email", True)
    assert columns == ["email", "first_name", "segments"]
    assert headers == ["user.Email", "user.FirstName", "user.CustomAttribute.SegmentMembership"]
    with pytest.raises(ValueError, match="not in field_mapping"):
        mapp_layout({"first_name": "user.FirstName"}, "email", True)
    with pytest.raises(ValueError, match="appears twice"):
        mapp_layout({"email": "user.Email", "x": "user.CustomAttribute.SegmentMembership"}, "email", True)
