"""LyticsHook against the Lytics sandbox: auth, segments, schema, scan paging and collect."""

from __future__ import annotations

import gzip
import io
import logging

import pytest

from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.pipeline.http import AuthError
from tests.helpers import lytics_conn


@pytest.fixture
def hook(lytics_sandbox, monkeypatch) -> LyticsHook:
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics_sandbox.base_url))
    return LyticsHook()


def test_segments_and_schema(hook: LyticsHook, lytics_sandbox) -> None:
    segments = {s["slug_name"]: s for s in hook.list_segments()}
    assert segments["high_value"]["size"] == lytics_sandbox.audience("high_value").size
    by_slug = hook.get_segment("high_value")
    assert hook.get_segment(by_slug["id"])["slug_name"] == "high_value"
    fields = {f["id"]: f["type"] for f in hook.get_schema_fields()}
    assert fields["email"] == "string" and fields["segments"] == "[]string"


def test_scan_follows_the_cursor_to_the_end(hook: LyticsHook, lytics_sandbox) -> None:
    pages = list(hook.scan_segment("high_value", limit=37))
    members = [m for page in pages for m in page.members]
    expected = list(lytics_sandbox.expected_members("high_value"))
    assert [m["_uid"] for m in members] == [m["_uid"] for m in expected]
    assert members == expected
    assert pages[-1].next_cursor == ""
    assert all(len(p.members) <= 37 for p in pages)
    assert pages[0].total == len(expected)


def test_scan_field_selection(hook: LyticsHook) -> None:
    page = next(hook.scan_segment("high_value", limit=5, fields=["email"]))
    assert page.members and all(set(m) <= {"_uid", "email"} for m in page.members)


def test_bad_token_fails_fast_and_is_never_logged(lytics_sandbox, monkeypatch, caplog) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(lytics_sandbox.base_url, "wrong-token-123"))
    with caplog.at_level(logging.DEBUG), pytest.raises(AuthError) as raised:
        LyticsHook().get_segment("high_value")
    assert raised.value.status == 401
    assert "wrong-token-123" not in caplog.text and "wrong-token-123" not in str(raised.value)


def test_collect_json_in_bounded_batches(hook: LyticsHook, lytics_sandbox) -> None:
    records = [{"email": f"p{i}@example.com", "n": i, "pad": "x" * 200} for i in range(300)]
    result = hook.collect_json("test_stream", iter(records), timestamp_field="ts", max_batch_bytes=20_000)
    assert result.accepted == 300 and result.rejected == 0
    assert result.requests > 1
    assert lytics_sandbox.collected("test_stream") == records


def test_collect_bulk_gzipped_csv(hook: LyticsHook, lytics_sandbox) -> None:
    body = gzip.compress(b"email,name\na@example.com,A\nb@example.com,B\n")
    result = hook.collect_bulk("bulk_stream", io.BytesIO(body), gzipped=True, filename="users.csv.gz")
    assert result.accepted == 2
    assert [r["email"] for r in lytics_sandbox.collected("bulk_stream")] == ["a@example.com", "b@example.com"]
