"""Row rendering: the same bytes as the CSV writer, rejects with their position, a stable signature."""

from __future__ import annotations

import io
import random
from collections import OrderedDict

from lytics_provider.pipeline.csv_render import CsvRowRenderer
from lytics_provider.pipeline.writers import CsvWriter
from lytics_provider.transfers.lytics_to_sftp import IdentifierCheck

COLUMNS = ("email", "name", "score", "tags", "attrs", "flag")
VALUES = [
    None,
    "",
    "plain",
    'quote "inside"',
    "comma, inside",
    "line\nbreak",
    "crlf\r\nend",
    " padded ",
    "café ✓",
    0,
    -7,
    10**20,
    1.5,
    0.1 + 0.2,
    1e20,
    True,
    False,
    [],
    ["a", "b,c"],
    ["x", 1, None, True, ["n", "m"]],
    ("t", 2),
    {"k": [1, None], "é": "v"},
    OrderedDict(z=1),
]


def _records(count: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    records = []
    for i in range(count):
        record = {"_uid": f"u{i}"}
        for column in COLUMNS:
            if rng.random() < 0.9:
                record[column] = rng.choice(VALUES)
        records.append(record)
    return records


def test_rendered_rows_are_the_writers_rows() -> None:
    records = _records(2_000)
    expected = io.BytesIO()
    with CsvWriter(expected, list(COLUMNS)) as writer:
        for record in records:
            writer.write(record)
    rendered = CsvRowRenderer(COLUMNS).render(records)
    header, _, body = expected.getvalue().partition(b"\r\n")
    assert header == b",".join(c.encode() for c in COLUMNS)
    assert rendered.text.encode() == body
    assert rendered.rows == len(records) and rendered.rejects == []


def test_rejected_rows_are_left_out_with_their_index_and_reason() -> None:
    records = [
        {"_uid": "a", "email": "ok@example.com"},
        {"_uid": "b", "email": "   "},
        {"_uid": "c", "email": "no-at-sign"},
        {"_uid": "d"},
        {"_uid": "e", "email": " spaced@example.com "},
    ]
    rendered = CsvRowRenderer(("email",), IdentifierCheck("email")).render(records)
    assert rendered.text == "ok@example.com\r\n spaced@example.com \r\n"
    assert rendered.rows == 2
    assert [(index, reason.split(":")[0]) for index, reason, _ in rendered.rejects] == [
        (1, "missing identifier"),
        (2, "invalid email address in 'email'"),
        (3, "missing identifier"),
    ]
    assert rendered.rejects[1][2] == records[2]


def test_signature_names_the_columns_and_the_check() -> None:
    base = CsvRowRenderer(("email", "city"), IdentifierCheck("email")).signature
    assert base == CsvRowRenderer(("email", "city"), IdentifierCheck("email")).signature
    assert base != CsvRowRenderer(("city", "email"), IdentifierCheck("email")).signature
    assert base != CsvRowRenderer(("email", "city"), IdentifierCheck("city")).signature
    assert base != CsvRowRenderer(("email", "city")).signature
