"""The one import reader: CSV row rules (strict and lenient), JSON lines, compression, rejects."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path

import pytest

from lytics_provider.files.field_selection import FieldsFound
from lytics_provider.files.readers import (
    FileImportError,
    ReadOptions,
    open_plain,
    read_rows,
    valid_records,
)
from lytics_provider.pipeline.rejects import RejectsWriter

CSV = b"email,plan,city\nA@x.io,gold,\nb@x.io,free\nc@x.io,free,Rome,EXTRA\n\nd@x.io,gold,Oslo\n"
LENIENT = ReadOptions("csv", row_width="no_extra", empty_cells="drop", numbering="row")


def rows(data: bytes, options: ReadOptions) -> list[tuple[int, int, object, object]]:
    return [(r.ordinal, r.number, r.record, r.reason) for r in read_rows(io.BytesIO(data), options, "f.csv")]


def test_strict_csv_rejects_any_width_mismatch_keeps_empty_cells_and_numbers_by_line() -> None:
    assert rows(CSV, ReadOptions("csv")) == [
        (1, 2, {"email": "A@x.io", "plan": "gold", "city": ""}, None),
        (2, 3, None, "wrong number of columns: expected 3, got 2"),
        (3, 4, None, "wrong number of columns: expected 3, got 4"),
        (5, 6, {"email": "d@x.io", "plan": "gold", "city": "Oslo"}, None),
    ]


def test_lenient_csv_keeps_short_rows_drops_empty_cells_and_numbers_by_data_row() -> None:
    assert rows(CSV, LENIENT) == [
        (1, 1, {"email": "A@x.io", "plan": "gold"}, None),
        (2, 2, {"email": "b@x.io", "plan": "free"}, None),
        (3, 3, None, "too many cells: 4 for 3 header columns"),
        (5, 5, {"email": "d@x.io", "plan": "gold", "city": "Oslo"}, None),
    ]


def test_selected_fields_keep_row_positions_and_note_every_field_found() -> None:
    found = FieldsFound()
    options = ReadOptions(
        "csv", row_width="no_extra", empty_cells="drop", numbering="row", fields=("city", "zip")
    )
    selected = [(r.ordinal, r.record) for r in read_rows(io.BytesIO(CSV), options, "f.csv", found)]
    # rows without a selected value are passed over; the others keep their ordinal (resume position)
    assert selected == [(3, None), (5, {"city": "Oslo"})]
    assert found.names == ["email", "plan", "city"] and found.missing(options.fields) == ["zip"]
    lines = b'{"a": 1, "b": 2}\n{"c": 3}\n{"b": 4}\n'
    found = FieldsFound()
    jsonl = [r.record for r in read_rows(io.BytesIO(lines), ReadOptions("jsonl", fields=("b",)), "f", found)]
    assert jsonl == [{"b": 2}, {"b": 4}] and found.names == ["a", "b", "c"]


def test_delimiter_and_header_errors_name_the_file_and_the_fix() -> None:
    tab = ReadOptions("csv", delimiter="\t")
    assert rows(b"email\tn\nx@y.z\t1\n", tab) == [(1, 2, {"email": "x@y.z", "n": "1"}, None)]
    with pytest.raises(FileImportError, match=r"f\.csv: the header row has empty or repeated column names"):
        rows(b"email,email\na,b\n", ReadOptions("csv"))
    with pytest.raises(FileImportError, match=r"f\.csv: not UTF-8 text .*save it as UTF-8"):
        rows(b"email\n\xff\xfe\n", ReadOptions("csv"))
    with pytest.raises(ValueError, match="delimiter must be one character"):
        ReadOptions("csv", delimiter="||")


def test_jsonl_rejects_malformed_lines_and_non_objects_and_records_over_the_limit(tmp_path: Path) -> None:
    data = (
        b'{"email": "a@x.io"}\n\n{"email": \n[1, 2]\n'
        + json.dumps({"email": "big@x.io", "b": "x" * 300}).encode()
    )
    options = ReadOptions("jsonl", max_record_bytes=256)
    with RejectsWriter(tmp_path / "rejects.jsonl") as rejects:
        records = list(valid_records(read_rows(io.BytesIO(data), options, "e.jsonl"), rejects, 256))
    assert [(r.ordinal, r.record) for r in records] == [(1, {"email": "a@x.io"})]
    assert records[0].size == len(b'{"email":"a@x.io"}')
    lines = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [(x["row_number"], x["reason"].split(":")[0], x["id"]) for x in lines] == [
        (3, "malformed JSON", None),
        (4, "not a JSON object (a list)", None),
        (5, "record over the 256 B Lytics limit", "big@x.io"),
    ]


@pytest.mark.parametrize("name", ["plain.csv", "misnamed.csv.gz", "zipped.zip", "gzipped.bin"])
def test_compression_is_recognised_by_content(tmp_path: Path, name: str) -> None:
    body = b"email\nz@x.io\n"
    path = tmp_path / name
    if name.startswith("zipped"):
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("inner.csv", body)
    elif name.startswith("gzipped"):
        path.write_bytes(gzip.compress(body))
    else:
        path.write_bytes(body)
    with open_plain(path, name) as stream:
        assert [r.record for r in read_rows(stream, ReadOptions("csv"), name)] == [{"email": "z@x.io"}]


def test_a_zip_with_two_files_and_a_pgp_file_without_a_key_fail_with_the_fix(tmp_path: Path) -> None:
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as archive:
        archive.writestr("a.csv", "x\n1\n")
        archive.writestr("b.csv", "x\n2\n")
    with (
        pytest.raises(ValueError, match="must hold exactly one file, found 2"),
        open_plain(two, "two.zip"),
    ):
        pass
    sealed = tmp_path / "s.csv.pgp"
    sealed.write_bytes(b"-----BEGIN PGP MESSAGE-----")
    with pytest.raises(FileImportError, match="set pgp_conn_id"), open_plain(sealed, sealed.name):
        pass


def test_object_store_imports_choose_their_csv_rules_explicitly() -> None:
    from lytics_provider.transfers.gcs_to_lytics import GCSToLyticsOperator
    from lytics_provider.transfers.s3_to_lytics import S3ToLyticsOperator

    s3 = S3ToLyticsOperator(task_id="i", job_id="j", bucket="b", stream="s", delimiter=";")
    assert s3.read_options() == ReadOptions(
        "csv", ";", row_width="no_extra", empty_cells="drop", numbering="row"
    )
    strict = GCSToLyticsOperator(task_id="i", job_id="j", bucket="b", file_type="json", csv_rows="strict")
    assert strict.read_options() == ReadOptions("jsonl")
    with pytest.raises(ValueError, match="csv_rows 'loose' is not supported; use 'lenient' or 'strict'"):
        S3ToLyticsOperator(task_id="i", job_id="j", bucket="b", stream="s", csv_rows="loose")
