"""The scan's completeness rule and the scan page classifier (cut short, error envelope, page)."""

from __future__ import annotations

import json

import pytest

from lytics_provider.pipeline.http import ServiceError, UnusableBody
from lytics_provider.pipeline.lytics_scan import parse_scan_page
from lytics_provider.pipeline.scan_completeness import (
    RESTART_SCAN,
    RETRY_PAGE,
    EarlyEndBudget,
    IncompleteScanError,
    ended_early,
    expected_members,
    tolerance,
)


def test_tolerance_is_ten_members_or_one_in_five_hundred() -> None:
    assert tolerance(0) == 10
    assert tolerance(2_000) == 10
    assert tolerance(5_001) == 11
    assert tolerance(1_000_000) == 2_000


def test_expected_members_prefers_the_page_total_and_honours_the_user_limit() -> None:
    assert expected_members(4_000, 3_900) == 4_000
    assert expected_members(None, 3_900) == 3_900
    assert expected_members(4_000, None, user_limit=120) == 120
    assert expected_members(50, 3_900, user_limit=120) == 50
    assert expected_members(None, None) is None


def test_ended_early_only_beyond_the_tolerance() -> None:
    assert ended_early(100, 2_000)
    assert ended_early(1_989, 2_000)
    assert not ended_early(1_990, 2_000)
    assert not ended_early(2_050, 2_000)
    assert not ended_early(0, None)
    assert not ended_early(998_000, 1_000_000)
    assert ended_early(997_999, 1_000_000)


def test_budget_retries_the_page_then_restarts_then_fails() -> None:
    budget = EarlyEndBudget("'newsletter'", page_retries=2, restarts=1)
    steps = [budget.next_step(300, 1_000) for _ in range(5)]
    assert steps == [RETRY_PAGE, RETRY_PAGE, RESTART_SCAN, RETRY_PAGE, RETRY_PAGE]
    with pytest.raises(IncompleteScanError) as raised:
        budget.next_step(300, 1_000)
    message = str(raised.value)
    assert "'newsletter'" in message and "300 members stored" in message and "reported 1000" in message


def _page(**doc: object) -> bytes:
    return json.dumps(doc).encode()


def test_parse_scan_page_reads_a_page() -> None:
    page = parse_scan_page(_page(data=[{"_uid": "a"}, {"_uid": "b"}], _next="c2", total=9), "c1")
    assert (page.count, page.next_cursor, page.total, page.start, page.last) == (2, "c2", 9, "c1", False)
    end = parse_scan_page(_page(status=200, message="success", data=[], _next="", total=9), "c2")
    assert end.last and end.count == 0


def test_parse_scan_page_names_a_body_cut_short() -> None:
    body = _page(data=[{"_uid": "a"}, {"_uid": "b"}], _next="c2", total=9)[:25]
    with pytest.raises(UnusableBody, match="body cut short after 25 bytes"):
        parse_scan_page(body, "c1")
    with pytest.raises(UnusableBody, match="not JSON"):
        parse_scan_page(b"<html>bad gateway</html>", "c1")


def test_parse_scan_page_names_an_error_envelope() -> None:
    with pytest.raises(UnusableBody) as raised:
        parse_scan_page(_page(status=500, message="scan backend timeout", data=None), "c1")
    assert raised.value.status == 500
    assert "status 500" in str(raised.value) and "scan backend timeout" in str(raised.value)


def test_parse_scan_page_rejects_another_shape_for_good() -> None:
    with pytest.raises(ServiceError, match="not the JSON the Lytics API documents"):
        parse_scan_page(_page(data={"_uid": "a"}), "")
