"""The Lytics sandbox over real loopback HTTP: scan paging, auth, faults, collect, churn, memory."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import signal
import subprocess
import sys
import tracemalloc
from typing import Any

import pytest
import requests

from lytics_sandbox.faults import FaultRule
from lytics_sandbox.httpserver import SandboxHTTPServer, json_response
from lytics_sandbox.lytics import LyticsSandbox, encode_cursor
from lytics_sandbox.synth import SyntheticAccount

TOKEN = "sandbox-token"
SCAN = r"/api/segment/[^/]+/scan"


@pytest.fixture
def api(lytics_sandbox: LyticsSandbox) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = TOKEN
    yield session
    session.close()


def url(sandbox: LyticsSandbox, path: str) -> str:
    return sandbox.base_url + path


def scan_all(api: requests.Session, sandbox: LyticsSandbox, slug: str, **params: Any) -> list[dict]:
    rows: list[dict] = []
    start = ""
    while True:
        body = api.get(url(sandbox, f"/api/segment/{slug}/scan"), params={**params, "start": start}).json()
        assert body["status"] == 200 and body["total"] == sandbox.audience(slug).size
        rows.extend(body["data"])
        start = body["_next"]
        if not start:
            return rows


# -- scan -------------------------------------------------------------------------------------
def test_scan_follows_next_to_exactly_total_members(api, lytics_sandbox) -> None:
    rows = scan_all(api, lytics_sandbox, "all_users", limit=100)
    assert len(rows) == lytics_sandbox.audience("all_users").size == 2000
    assert rows == list(lytics_sandbox.expected_members("all_users"))
    assert len({r["_uid"] for r in rows}) == 2000
    assert lytics_sandbox.calls["segment_scan"] == 20


def test_scan_by_id_matches_scan_by_slug(api, lytics_sandbox) -> None:
    aud = lytics_sandbox.audience("high_value")
    by_id = api.get(url(lytics_sandbox, f"/api/segment/{aud.id}/scan"), params={"limit": 7}).json()
    by_slug = api.get(url(lytics_sandbox, "/api/segment/high_value/scan"), params={"limit": 7}).json()
    assert by_id["data"] == by_slug["data"] and by_id["_next"] == by_slug["_next"]
    missing = api.get(url(lytics_sandbox, "/api/segment/nope/scan"))
    assert missing.status_code == 404 and missing.json()["status"] == 404


def test_limit_default_clamp_and_invalid(api, lytics_sandbox) -> None:
    scan = url(lytics_sandbox, "/api/segment/all_users/scan")
    assert len(api.get(scan).json()["data"]) == 10
    assert len(api.get(scan, params={"limit": 500}).json()["data"]) == 100
    for bad in ("0", "-3", "ten"):
        resp = api.get(scan, params={"limit": bad})
        assert resp.status_code == 400 and resp.json()["message"]


def test_fields_filter_always_keeps_uid(api, lytics_sandbox) -> None:
    body = api.get(
        url(lytics_sandbox, "/api/segment/newsletter/scan"), params={"fields": "email,first_name", "limit": 5}
    ).json()
    assert [list(r) for r in body["data"]] == [["_uid", "email", "first_name"]] * 5
    expected = list(lytics_sandbox.expected_members("newsletter", fields=["email", "first_name"]))[:5]
    assert body["data"] == expected


def test_scan_profiles_have_the_documented_shape(api, lytics_sandbox) -> None:
    row = api.get(url(lytics_sandbox, "/api/segment/high_value/scan"), params={"limit": 1}).json()["data"][0]
    assert len(row["_uid"]) == 24 and row["email"].endswith("@example.com")
    assert 0 <= row["score_engagement"] <= 100 and isinstance(row["scores"]["momentum"], float)
    assert "high_value" in row["segments"] and "all_users" in row["segments"]
    assert row["created_ts"].endswith("Z") and row["last_active_ts"] >= row["created_ts"][:10]


def test_bad_and_foreign_cursors_are_400(api, lytics_sandbox) -> None:
    scan = url(lytics_sandbox, "/api/segment/high_value/scan")
    assert api.get(scan, params={"start": "not-a-cursor!"}).status_code == 400
    other = encode_cursor(lytics_sandbox.audience("newsletter").id, 0, 10)
    assert api.get(scan, params={"start": other}).status_code == 400


def test_cursor_from_an_older_version_is_expired(api, lytics_sandbox) -> None:
    scan = url(lytics_sandbox, "/api/segment/high_value/scan")
    first = api.get(scan, params={"limit": 10}).json()
    lytics_sandbox.set_version("high_value", 1)
    resp = api.get(scan, params={"start": first["_next"]})
    assert resp.status_code == 400 and "expired" in resp.json()["message"]


# -- auth ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers,params",
    [({}, {}), ({"Authorization": "wrong"}, {}), ({"Authorization": f"Bearer {TOKEN}"}, {})],
)
def test_bad_or_missing_token_is_401(lytics_sandbox, headers, params) -> None:
    resp = requests.get(url(lytics_sandbox, "/api/segment"), headers=headers, params=params)
    assert resp.status_code == 401
    body = resp.json()
    assert body["status"] == 401 and body["message"] and body["request_id"]
    v2 = requests.get(url(lytics_sandbox, "/v2/segment"), headers=headers)
    assert v2.status_code == 401 and v2.json()["errors"][0]["code"] == "UNAUTHORIZED-017"


def test_token_in_query_is_accepted_and_never_logged(lytics_sandbox) -> None:
    for name in ("access_token", "key"):
        resp = requests.get(url(lytics_sandbox, "/api/segment"), params={name: TOKEN})
        assert resp.status_code == 200
    assert TOKEN not in json.dumps(list(lytics_sandbox.request_log))
    assert all(e["query"].get("access_token", "***") == "***" for e in lytics_sandbox.request_log)


# -- segments, schema, entity ----------------------------------------------------------------------
def test_segment_list_get_and_sizes(api, lytics_sandbox) -> None:
    params = {"table": "user", "kind": "segment", "sizes": "true"}
    v2 = api.get(url(lytics_sandbox, "/v2/segment"), params=params)
    segs = {s["slug_name"]: s for s in v2.json()["data"]}
    assert set(segs) == {"all_users", "high_value", "newsletter"}
    hv = segs["high_value"]
    assert (hv["size"], hv["name"], hv["kind"], len(hv["id"])) == (500, "High Value", "segment", 32)
    v1 = api.get(url(lytics_sandbox, "/api/segment")).json()["data"]
    assert {s["slug_name"] for s in v1} == set(segs) and "size" not in v1[0]
    for path in (f"/v2/segment/{hv['id']}", "/v2/segment/high_value", "/api/segment/high_value"):
        assert api.get(url(lytics_sandbox, path)).json()["data"]["id"] == hv["id"]
    for suffix in ("size", "sizes"):
        doc = api.get(url(lytics_sandbox, f"/api/segment/{hv['id']}/{suffix}")).json()["data"]
        assert doc == {"id": hv["id"], "name": "High Value", "slug_name": "high_value", "size": 500}
    many = api.get(url(lytics_sandbox, "/api/segment/sizes"), params={"ids": f"{hv['id']},newsletter,zzz"})
    assert [d["size"] for d in many.json()["data"]] == [500, 1000]
    missing = api.get(url(lytics_sandbox, "/v2/segment/zzz"))
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "NOTFOUND-003"


def test_schema_endpoints(api, lytics_sandbox) -> None:
    fields = api.get(url(lytics_sandbox, "/v2/schema/user/field")).json()["data"]
    by_id = {f["id"]: f for f in fields}
    assert by_id["email"] == {
        "id": "email",
        "type": "string",
        "shortdesc": "Email Address",
        "is_identifier": True,
        "is_pii": True,
    }
    assert by_id["scores"]["type"] == "map[string]number" and by_id["score_engagement"]["type"] == "int"
    nonscalar = api.get(url(lytics_sandbox, "/v2/schema/user/field"), params={"filter": "nonscalar"}).json()
    assert {f["id"] for f in nonscalar["data"]} == {"scores", "segments"}
    v1 = api.get(url(lytics_sandbox, "/api/schema/user")).json()["data"]
    assert {c["as"] for c in v1["fields"]} == set(by_id) and "email" in v1["by_fields"]
    assert api.get(url(lytics_sandbox, "/v2/schema/nope/field")).status_code == 404


def test_entity_lookup_by_uid_email_and_user_id(api, lytics_sandbox) -> None:
    member = next(lytics_sandbox.expected_members("high_value"))
    for field in ("_uid", "email", "user_id"):
        resp = api.get(url(lytics_sandbox, f"/api/entity/user/{field}/{member[field]}"))
        assert resp.status_code == 200 and resp.json()["data"] == member
    quoted = member["email"].replace("@", "%40")
    by_quoted = api.get(url(lytics_sandbox, f"/api/entity/user/email/{quoted}")).json()
    assert by_quoted["data"]["_uid"] == member["_uid"]
    for path in ("/api/entity/user/email/nobody@example.com", "/api/entity/user/_uid/" + "f" * 24):
        assert api.get(url(lytics_sandbox, path)).status_code == 404


# -- faults -----------------------------------------------------------------------------------------
def test_429_without_and_with_retry_after(api, lytics_sandbox) -> None:
    scan = url(lytics_sandbox, "/api/segment/high_value/scan")
    lytics_sandbox.faults.add("429", path_regex=SCAN)
    first = api.get(scan)
    assert first.status_code == 429 and "Retry-After" not in first.headers
    assert first.json()["status"] == 429
    lytics_sandbox.faults.add(FaultRule("429", path_regex=SCAN, retry_after=3))
    second = api.get(scan)
    assert second.status_code == 429 and second.headers["Retry-After"] == "3"
    assert api.get(scan).status_code == 200
    assert lytics_sandbox.faults.injected["429"] == 2


def test_5xx_after_and_times(api, lytics_sandbox) -> None:
    scan = url(lytics_sandbox, "/api/segment/high_value/scan")
    lytics_sandbox.faults.add(FaultRule("5xx", path_regex=SCAN, after=2, times=2, status=503))
    statuses = [api.get(scan).status_code for _ in range(6)]
    assert statuses == [200, 200, 503, 503, 200, 200]
    assert api.get(url(lytics_sandbox, "/api/segment")).status_code == 200


def test_every_nth_request_without_limit(api, lytics_sandbox) -> None:
    lytics_sandbox.faults.add(FaultRule("5xx", path_regex=r"/api/segment$", every=3, times=None))
    statuses = [api.get(url(lytics_sandbox, "/api/segment")).status_code for _ in range(7)]
    assert statuses == [500, 200, 200, 500, 200, 200, 500]


def test_slow_serves_normally(api, lytics_sandbox) -> None:
    lytics_sandbox.faults.add(FaultRule("slow", path_regex=SCAN, delay=0.05))
    resp = api.get(url(lytics_sandbox, "/api/segment/high_value/scan"))
    assert resp.status_code == 200 and len(resp.json()["data"]) == 10
    assert lytics_sandbox.faults.injected["slow"] == 1


def test_drop_breaks_the_response_midway_then_recovers(api, lytics_sandbox) -> None:
    lytics_sandbox.faults.add(FaultRule("drop", path_regex=SCAN))
    scan = url(lytics_sandbox, "/api/segment/high_value/scan")
    with pytest.raises(requests.exceptions.RequestException):
        api.get(scan).json()
    assert api.get(scan).status_code == 200
    assert lytics_sandbox.faults.injected["drop"] == 1
    assert any(e["status"] == 0 for e in lytics_sandbox.request_log)


def test_expired_cursor_only_hits_requests_with_start(api, lytics_sandbox) -> None:
    lytics_sandbox.faults.add(FaultRule("expired_cursor", path_regex=SCAN))
    scan = url(lytics_sandbox, "/api/segment/high_value/scan")
    first = api.get(scan)
    assert first.status_code == 200
    expired = api.get(scan, params={"start": first.json()["_next"]})
    assert expired.status_code == 400 and "expired" in expired.json()["message"]
    assert api.get(scan, params={"start": first.json()["_next"]}).status_code == 200


def test_early_end_empties_a_page_in_the_middle_of_a_scan(api, lytics_sandbox) -> None:
    lytics_sandbox.faults.add(FaultRule("early_end", path_regex=SCAN, times=1))
    scan = url(lytics_sandbox, "/api/segment/high_value/scan")
    first = api.get(scan).json()
    assert len(first["data"]) == 10 and first["_next"]
    ended = api.get(scan, params={"start": first["_next"]})
    assert ended.status_code == 200
    assert (ended.json()["data"], ended.json()["_next"], ended.json()["total"]) == ([], "", 500)
    again = api.get(scan, params={"start": first["_next"]}).json()
    assert len(again["data"]) == 10 and again["_next"]


def test_error_envelope_and_truncated_answer_200(api, lytics_sandbox) -> None:
    lytics_sandbox.faults.add(FaultRule("error_envelope", path_regex=SCAN, times=1, status=503))
    lytics_sandbox.faults.add(FaultRule("truncated", path_regex=SCAN, times=1))
    scan = url(lytics_sandbox, "/api/segment/high_value/scan")
    envelope = api.get(scan)
    assert envelope.status_code == 200
    body = envelope.json()
    assert (body["status"], body["data"]) == (503, None) and body["message"]
    cut = api.get(scan)
    assert cut.status_code == 200 and len(cut.content) == int(cut.headers["Content-Length"])
    with pytest.raises(ValueError):
        json.loads(cut.content)
    whole = api.get(scan)
    assert len(cut.content) == len(whole.content) // 2
    with pytest.raises(ValueError, match="envelope status"):
        FaultRule("error_envelope", status=200)


def test_faults_clear_resets_rules_and_counts(api, lytics_sandbox) -> None:
    lytics_sandbox.faults.add(FaultRule("5xx", times=None))
    assert api.get(url(lytics_sandbox, "/api/segment")).status_code == 500
    lytics_sandbox.faults.clear()
    assert api.get(url(lytics_sandbox, "/api/segment")).status_code == 200
    assert not lytics_sandbox.faults.injected


# -- collect ---------------------------------------------------------------------------------------
def test_collect_json_array_and_single_object(api, lytics_sandbox) -> None:
    coll = url(lytics_sandbox, "/collect/json/crm")
    resp = api.post(coll, json=[{"email": "a@x.io"}, {"email": "b@x.io"}], params={"timestamp_field": "ts"})
    data = resp.json()["data"]
    assert data["message_count"] == 2 and data["rejected_count"] == 0 and data["timestamp_field"] == "ts"
    api.post(coll, json={"email": "c@x.io"}, params={"filename": "one.json"})
    assert [r["email"] for r in lytics_sandbox.collected("crm")] == ["a@x.io", "b@x.io", "c@x.io"]
    api.post(coll, json=[{"email": "d@x.io"}], params={"dryrun": "true"})
    assert len(lytics_sandbox.collected("crm")) == 3
    assert [r["count"] for r in lytics_sandbox.collect_requests] == [2, 1, 1]
    ndjson = api.post(coll, data=b'{"a":1}\n{"a":2}\n', headers={"Content-Type": "application/json"})
    assert ndjson.status_code == 400


def test_records_over_16kb_are_rejected(api, lytics_sandbox) -> None:
    big = {"email": "big@x.io", "blob": "x" * (16 * 1024)}
    data = api.post(url(lytics_sandbox, "/collect/json/s"), json=[{"email": "ok@x.io"}, big]).json()["data"]
    assert (data["message_count"], data["rejected_count"]) == (1, 1)
    assert lytics_sandbox.collected("s") == [{"email": "ok@x.io"}]


def test_collect_bulk_csv_plain_and_gzip(api, lytics_sandbox) -> None:
    csv_body = b"email,first_name\na@x.io,Ann\nb@x.io,Bo\n"
    bulk = url(lytics_sandbox, "/collect/bulk/users")
    headers = {"Content-Type": "application/csv"}
    assert api.post(bulk, data=csv_body, headers=headers).json()["data"]["message_count"] == 2
    assert api.post(bulk, data=gzip.compress(csv_body), headers=headers).json()["data"]["message_count"] == 2
    declared = {**headers, "Content-Encoding": "gzip"}
    assert api.post(bulk, data=gzip.compress(csv_body), headers=declared).json()["data"]["message_count"] == 2
    assert lytics_sandbox.collected("users")[:2] == [
        {"email": "a@x.io", "first_name": "Ann"},
        {"email": "b@x.io", "first_name": "Bo"},
    ]
    assert len(lytics_sandbox.collected("users")) == 6


def test_collect_bulk_csv_headers_delimiter_append(api, lytics_sandbox) -> None:
    resp = api.post(
        url(lytics_sandbox, "/collect/bulk/tsv"),
        data=b"a@x.io\t1\nb@x.io\t2\n",
        headers={"Content-Type": "application/csv"},
        params={"headers": "email,score", "delimiter": "t", "append": '{"source":"crm"}'},
    )
    assert resp.json()["data"]["message_count"] == 2
    assert lytics_sandbox.collected("tsv")[1] == {"email": "b@x.io", "score": "2", "source": "crm"}


def test_collect_bulk_csv_bad_row_stops_unless_droperrors(api, lytics_sandbox) -> None:
    body = b"email,n\na@x.io,1\nbroken\nc@x.io,3\n"
    bulk = url(lytics_sandbox, "/collect/bulk/rows")
    headers = {"Content-Type": "application/csv"}
    stopped = api.post(bulk, data=body, headers=headers)
    assert stopped.status_code == 400 and stopped.json()["data"]["message_count"] == 1
    dropped = api.post(bulk, data=body, headers=headers, params={"droperrors": "true"}).json()["data"]
    assert (dropped["message_count"], dropped["rejected_count"], dropped["droperrors"]) == (2, 1, True)
    assert [r["email"] for r in lytics_sandbox.collected("rows")] == ["a@x.io", "a@x.io", "c@x.io"]


def test_collect_bulk_json_array_and_ndjson(api, lytics_sandbox) -> None:
    bulk = url(lytics_sandbox, "/collect/bulk/events")
    headers = {"Content-Type": "application/json"}
    ndjson = b'{"id":1,"tags":["a","b"]}\n\n{"id":2}\n'
    assert api.post(bulk, data=ndjson, headers=headers).json()["data"]["message_count"] == 2
    arr = json.dumps([{"id": 3}]).encode()
    assert api.post(bulk, data=gzip.compress(arr), headers=headers).json()["data"]["message_count"] == 1
    assert [r["id"] for r in lytics_sandbox.collected("events")] == [1, 2, 3]
    nested = api.post(bulk, data=b'{"orders":[{"id":1}]}\n', headers=headers, params={"droperrors": "1"})
    assert nested.json()["data"]["rejected_count"] == 1
    assert api.post(bulk, data=b"a,b\n", headers={"Content-Type": "text/plain"}).status_code == 415


# -- churn, determinism, memory ---------------------------------------------------------------------
def test_churn_between_versions_follows_the_documented_formula(api, lytics_sandbox) -> None:
    lytics_sandbox.set_churn("all_users", exits=7, enters=11, changes=5)
    before = {r["_uid"]: r for r in scan_all(api, lytics_sandbox, "all_users", limit=100)}
    lytics_sandbox.set_version("all_users", 1)
    after = {r["_uid"]: r for r in scan_all(api, lytics_sandbox, "all_users", limit=100)}
    assert len(after) == 2000 - 7 + 11 == lytics_sandbox.audience("all_users").size
    assert len(set(before) - set(after)) == 7 and len(set(after) - set(before)) == 11
    changed = [u for u in set(before) & set(after) if before[u] != after[u]]
    acct = lytics_sandbox.account
    step = lytics_sandbox.audience("all_users").changed_in_step(1)
    assert sorted(changed) == sorted(acct.uid(i) for i in step)
    exited = {acct.uid(i) for i in range(0, 7)}
    assert exited == set(before) - set(after)


def test_account_is_deterministic_and_with_churn_is_a_copy() -> None:
    a, b = SyntheticAccount(seed=3), SyntheticAccount(seed=3)
    assert [a.profile(i) for i in range(50)] == [b.profile(i) for i in range(50)]
    assert SyntheticAccount(seed=4).profile(1) != a.profile(1)
    c = a.with_churn("high_value", exits=1, enters=2, changes=3)
    assert (c.audience("high_value").enters, a.audience("high_value").enters) == (2, 25)
    noisy = SyntheticAccount(invalid_email_rate=0.1)
    bad = [i for i in range(1000) if "@" not in noisy.profile(i)["email"]]
    assert 50 < len(bad) < 150 and noisy.index_from_email(noisy.email(bad[0])) == bad[0]


def test_three_million_member_audience_last_page_in_small_memory() -> None:
    tracemalloc.start()
    try:
        sandbox = LyticsSandbox(SyntheticAccount(audiences={"everyone": 3_000_000}))
        with sandbox, requests.Session() as session:
            aud = sandbox.audience("everyone")
            start = encode_cursor(aud.id, aud.version, 3_000_000 - 40)
            body = session.get(
                url(sandbox, "/api/segment/everyone/scan"),
                params={"limit": 100, "start": start},
                headers={"Authorization": TOKEN},
            ).json()
            last = list(sandbox.account.iter_members("everyone", start=2_999_960))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert body["total"] == 3_000_000 and body["_next"] == "" and len(body["data"]) == 40
    assert body["data"] == last
    assert peak < 4 * 1024 * 1024


# -- server base ---------------------------------------------------------------------------------
def test_keep_alive_reuses_one_connection(lytics_sandbox) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", lytics_sandbox.port)
    try:
        for _ in range(3):
            conn.request("GET", "/api/segment/high_value/size", headers={"Authorization": TOKEN})
            resp = conn.getresponse()
            assert resp.status == 200 and json.loads(resp.read())["data"]["size"] == 500
    finally:
        conn.close()
    assert lytics_sandbox.calls["segment_size"] == 3 and lytics_sandbox.total_calls == 3


def test_generic_server_routes_counts_and_errors() -> None:
    server = SandboxHTTPServer(log_size=2)

    @server.route("GET", r"/items/(?P<item>\w+)", name="it")
    def item(request):
        return json_response({"item": request.params["item"]})

    with server:
        assert requests.get(server.base_url + "/items/abc").json() == {"item": "abc"}
        assert requests.post(server.base_url + "/items/abc").status_code == 405
        assert requests.get(server.base_url + "/nothing").status_code == 404
    assert server.calls == {"it": 1, "<unmatched>": 2} and server.total_calls == 3
    assert [e["status"] for e in server.request_log] == [405, 404]


def test_console_entry_point_prints_urls_and_stops_on_sigterm(tmp_path) -> None:
    cmd = [sys.executable, "-m", "lytics_sandbox", "--lytics-port", "0", "--sftp-port", "0"]
    cmd += ["--sftp-root", str(tmp_path / "sftp"), "--audience", "tiny=3"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ})
    try:
        info = json.loads(proc.stdout.readline())
        assert info["audiences"] == {"tiny": 3} and info["sftp_port"] > 0
        sizes = requests.get(info["lytics_url"] + "/api/segment/tiny/size", headers={"Authorization": TOKEN})
        assert sizes.json()["data"]["size"] == 3
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
