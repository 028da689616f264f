"""The iContact mapping module: LQL functions, the seed tables, contact mapping and aggregation."""

from __future__ import annotations

import itertools
import random

import pytest

from lytics_provider.pipeline.icontact_mapping import (
    ACTIVITY_MAPPING,
    USER_MAPPING,
    ContactMapper,
    ProfileAggregate,
    lql_email,
    lql_emaildomain,
    lql_hash,
    read_event,
    rfc3339,
    siphash24,
    urlmain,
)

# The seed's tables, row by row (source, Lytics field).
SEED_USERS = [
    ("bounce_count", "ic_bounce_count"), ("business", "ic_business"), ("city", "city"),
    ("create_date", "ic_user_created"), ("email(email)", "email"), ("emaildomain(email)", "email_domain"),
    ("fax", "fax"), ("first_name", "first_name"), ("id", "ic_contact_id"), ("last_name", "last_name"),
    ("phone", "phone"), ("postal_code", "postal_code"), ("prefix", "prefix"), ("state", "region"),
    ("status", "ic_status"), ("street", "street_address"), ("street_line_2", "address_2"),
    ("suffix", "suffix"),
]  # fmt: skip
SEED_ACTIVITY = [
    "ic_contact_id", "email_bouncect", "email_click_ct", "email_open_ct", "email_unsubscribect",
    "last_channel_activities", "email_last_click_ts", "email_last_open_ts", "email_lastbounce_ts",
    "email_lastunsubscribe_ts", "last_active_ts", "email_first_click_ts", "email_first_open_ts",
    "email_firstbounce_ts", "email_firstunsubscribe_ts", "channels", "hashedurls",
]  # fmt: skip


def test_tables_match_the_seed_exactly() -> None:
    assert [(r.source, r.field) for r in USER_MAPPING] == SEED_USERS
    assert [r.field for r in ACTIVITY_MAPPING] == SEED_ACTIVITY
    assert {r.field for r in USER_MAPPING if r.unique_id} == {"email", "ic_contact_id"}


def test_siphash_reference_vectors() -> None:
    # Vectors of the SipHash-2-4 reference implementation (key 00..0f, message 00..len-1).
    k0 = int.from_bytes(bytes(range(8)), "little")
    k1 = int.from_bytes(bytes(range(8, 16)), "little")
    assert siphash24(k0, k1, b"") == 0x726FDB47DD0E0E31
    assert siphash24(k0, k1, bytes(range(8))) == 0x93F5F5799A932462
    assert siphash24(k0, k1, bytes(range(15))) == 0xA129CA6149BE45E5


def test_lql_hash_is_signed_siphash_with_key_0_1() -> None:
    raw = siphash24(0, 1, b"www.lytics.io/")
    assert int(lql_hash("www.lytics.io/")) == (raw - 2**64 if raw >= 2**63 else raw)
    assert -(2**63) <= int(lql_hash("x")) < 2**63


@pytest.mark.parametrize(
    ("url", "main"),
    [
        ("http://www.lytics.io/?utm_source=google", "www.lytics.io/"),
        ("https://shop.example.com/sale?utm_source=a#frag", "shop.example.com/sale"),
        ("https://shop.example.com:8443/a/b", "shop.example.com:8443/a/b"),
        ("", None),
        (None, None),
    ],
)
def test_urlmain(url, main) -> None:
    assert urlmain(url) == main


def test_email_and_domain() -> None:
    assert lql_email("  Ada.Nguyen@Mail.Example.COM ") == "ada.nguyen@mail.example.com"
    assert lql_emaildomain("  Ada.Nguyen@Mail.Example.COM ") == "mail.example.com"
    assert lql_email("broken-5") is None and lql_emaildomain("broken-5") is None


def test_dates_naive_in_source_timezone_and_offsets_respected() -> None:
    assert rfc3339("2025-07-01 12:00:00") == "2025-07-01T16:00:00Z"  # EDT
    assert rfc3339("2025-01-01 12:00:00") == "2025-01-01T17:00:00Z"  # EST
    assert rfc3339("2025-01-01T12:00:00+02:00") == "2025-01-01T10:00:00Z"
    assert rfc3339("2025-01-01 12:00:00", "UTC") == "2025-01-01T12:00:00Z"
    assert rfc3339("0000-00-00 00:00:00") is None and rfc3339("soon") is None


def test_contact_mapping_leaves_blanks_out_and_rejects_missing_id() -> None:
    mapper = ContactMapper()
    result = mapper.map({"contactId": "7", "email": "not-mail", "firstName": "", "bounceCount": 2})
    assert result.record == {"ic_bounce_count": "2", "ic_contact_id": "7"}
    assert result.notes and "email" in result.notes[0]
    assert mapper.map({"email": "a@b.co"}).reason == "contact has no contactId"


def _events(n: int, seed: int) -> list[tuple[str, int, str | None]]:
    rng = random.Random(seed)
    urls = ["https://a.example/x?q=1", "https://a.example/x?q=2", "http://b.example/", None]
    out = []
    for _ in range(n):
        kind = rng.choice(["bounce", "open", "click", "unsubscribe"])
        out.append(
            (
                kind,
                rng.randint(1_700_000_000_000, 1_800_000_000_000),
                rng.choice(urls) if kind == "click" else None,
            )
        )
    return out


def test_aggregate_fields_follow_the_conditional_table() -> None:
    agg = ProfileAggregate()
    agg.add("bounce", 5_000)
    agg.add("open", 2_000)
    agg.add("open", 3_000)
    agg.add("click", 4_000, "https://a.example/x?q=1")
    agg.add("click", 1_000, "http://a.example/x?q=2")
    key = lql_hash("a.example/x")
    assert agg.fields() == {
        "email_bouncect": 1,
        "email_click_ct": 2,
        "email_open_ct": 2,
        "last_channel_activities": {"email": 4_000},  # the bounce at 5_000 is not engagement
        "email_last_click_ts": 4_000,
        "email_last_open_ts": 3_000,
        "email_lastbounce_ts": 5_000,
        "last_active_ts": 4_000,
        "email_first_click_ts": 1_000,
        "email_first_open_ts": 2_000,
        "email_firstbounce_ts": 5_000,
        "channels": ["email"],
        "hashedurls": {key: 2},
    }


def test_bounce_only_contact_has_no_engagement_fields() -> None:
    agg = ProfileAggregate()
    agg.add("bounce", 10)
    assert set(agg.fields()) == {"email_bouncect", "email_lastbounce_ts", "email_firstbounce_ts"}


def test_merging_runs_equals_aggregating_everything_at_once() -> None:
    events = _events(300, seed=11)
    whole = ProfileAggregate()
    for event in events:
        whole.add(*event)
    for cut_a, cut_b in itertools.combinations((0, 37, 150, 299, 300), 2):
        parts = [events[:cut_a], events[cut_a:cut_b], events[cut_b:]]
        merged = ProfileAggregate()
        for part in parts:
            delta = ProfileAggregate()
            for event in part:
                delta.add(*event)
            merged = ProfileAggregate.from_state(merged.to_state()).merge(delta)
        assert merged.fields() == whole.fields()


def test_read_event_rejects_rows_without_contact_or_time() -> None:
    assert read_event("9", "opens", {"openTime": "2026-05-01T10:00:00-04:00"}) == "open without contactId"
    assert "unreadable openTime" in str(read_event("9", "opens", {"contactId": 1, "openTime": "x"}))
    click = read_event(
        "9", "clicks", {"contactId": 1, "clickTime": "2026-05-01T10:00:00-04:00", "clickLink": "u"}
    )
    assert not isinstance(click, str)
    assert click.ts == 1_777_644_000_000 and click.url == "u" and click.time == "2026-05-01T14:00:00Z"
