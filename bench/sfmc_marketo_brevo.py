"""API calls and request rate of the Marketing Cloud, Marketo and Brevo exports, against their stand-ins.

Run:  .venv/bin/python -m bench.sfmc_marketo_brevo [--members 100000] [--churn 0.01]
      [--journey-members 2000] [--time-scale 1] [--only sfmc|marketo|brevo ...]

Each destination gets synthetic plans through the sync engine (no Lytics scan): a first sync of
``--members`` members, then a churn run in which ``--churn`` of them exit and as many new ones
enter. The ideal call count is ``ceil(n / the vendor's max batch)`` for each operation the
contract needs (Marketing Cloud: 50 rows per rowset, one call per journey entry event; Marketo:
300 leads per createOrUpdate plus 300 per static-list call; Brevo: 5,000 contacts per import,
150 emails per list removal). The stand-ins enforce the published limits (Marketo 100 calls per
20 seconds with 606; Brevo 10 calls a second with 429) with Marketo's window multiplied by
``--time-scale`` (the client's budget with it; 1 is the real limit, which a loopback run of
300-lead calls can outpace). Journeys take one call
per event, so they run on ``--journey-members``. Prints ``| measure | value | notes |``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROWSET, LEADS, IMPORT, REMOVE = 50, 300, 5000, 150


DESTINATION_BENCH = "SFMC / Marketo / Brevo"


def _rows(kind: str, target: str, start: int, count: int, payload: dict[str, Any]) -> list[tuple[Any, ...]]:
    body = json.dumps(payload)
    return [
        (kind, target, f"u{i}", f"member{i}@example.com", None, body if kind in ("add", "enter") else None)
        for i in range(start, start + count)
    ]


def _act(folder: Path, name: str, rows: list[tuple[Any, ...]], dest: Any) -> float:
    from lytics_provider.sync.plan import SyncPlan

    started = time.perf_counter()
    with closing(SyncPlan(folder / f"{name}.db")) as plan:
        plan.add_work(rows)
        dest.act(plan)
    return time.perf_counter() - started


def _ratio(calls: int, ideal: int) -> str:
    return f"{calls:,} ({calls / ideal:.2f}x ideal {ideal:,})"


def sfmc_rows(members: int, churn: int, journey_members: int, folder: Path) -> list[tuple[str, str, str]]:
    from lytics_provider.hooks.sfmc import SfmcDataExtensionDestination, SfmcHook, SfmcJourneyDestination
    from lytics_sandbox.sfmc import SfmcSandbox

    with SfmcSandbox() as stand:
        os.environ["AIRFLOW_CONN_SFMC_DEFAULT"] = json.dumps(stand.connection())
        stand.data.add_data_extension(
            "Bench", {"SubscriberKey": "EmailAddress", "FirstName": "Text"}, ["SubscriberKey"]
        )

        def de() -> SfmcDataExtensionDestination:
            return SfmcDataExtensionDestination(SfmcHook(), "Bench", "email", "SubscriberKey", {})

        payload = {"FirstName": "Ada"}
        _act(folder, "de_first", _rows("add", "Bench", 0, members, payload), de())
        first = stand.calls_to("rowset")
        stand.reset_counters()
        _act(folder, "de_churn", _rows("add", "Bench", members, churn, payload), de())
        churned = stand.calls_to("rowset")

        stand.data.event_definitions.add("APIEvent-bench")
        stand.reset_counters()
        journey = SfmcJourneyDestination(
            SfmcHook(), "APIEvent-bench", "email", {}, job_id="bench", run_id="r1", audience="bench",
            events=["enter"], batch_size=1,
        )  # fmt: skip
        elapsed = _act(folder, "journey", _rows("enter", "default", 0, journey_members, {}), journey)
        events = stand.calls_to("event")
    return [
        (
            "Marketing Cloud data extension, first sync: API calls",
            _ratio(first, math.ceil(members / ROWSET)),
            f"rowset upserts of 50 rows for {members:,} members (plus 1 token call per hook)",
        ),
        (
            "Marketing Cloud data extension, 1% churn: API calls",
            _ratio(churned, math.ceil(churn / ROWSET)),
            f"{churn:,} enters upserted; {churn:,} exits keep their rows (nothing sent)",
        ),
        (
            "Marketing Cloud Trigger Journey: API calls",
            _ratio(events, journey_members),
            f"{journey_members:,} entry events, one call each (the contract has no batch); "
            f"{journey_members / elapsed:.0f} events/s with a checkpoint per event",
        ),
    ]


def marketo_rows(members: int, churn: int, scale: float, folder: Path) -> list[tuple[str, str, str]]:
    from lytics_provider.hooks.marketo import MarketoHook, MarketoListDestination
    from lytics_provider.sync.refs import RefStore
    from lytics_sandbox.marketo import MarketoSandbox

    window = 20.0 * scale
    with MarketoSandbox() as stand:
        stand.window, stand.daily_quota = window, 10**9
        connection = {**stand.connection(), "extra": {"window_seconds": window}}
        os.environ["AIRFLOW_CONN_MARKETO_DEFAULT"] = json.dumps(connection)
        list_id = str(stand.data.add_list("Bench"))

        def dest() -> MarketoListDestination:
            return MarketoListDestination(
                MarketoHook(), list_id, "email", {"first_name": "firstName"}, refs=RefStore("bench_marketo")
            )

        payload = {"firstName": "Ada"}
        elapsed = _act(folder, "mk_first", _rows("add", list_id, 0, members, payload), dest())
        first = stand.total_calls - stand.calls_to("token")
        refused, peak = stand.rate_limited, stand.peak()
        served_first = len(stand.history)
        stand.reset_counters()
        rows = _rows("add", list_id, members, churn, payload) + _rows("remove", list_id, 0, churn, {})
        _act(folder, "mk_churn", rows, dest())
        churned = stand.total_calls - stand.calls_to("token")
        lookups = stand.calls_to("get_leads")
        held = len(stand.data.members[int(list_id)])
    limit_rate = 100 / window
    ideal_churn = 2 * math.ceil(churn / LEADS) + math.ceil(churn / LEADS)
    return [
        (
            "Marketo first sync: API calls",
            _ratio(first, 2 * math.ceil(members / LEADS)),
            f"createOrUpdate of 300 leads + a static-list add of 300 per batch; {held:,} leads in the list "
            "after the churn run",
        ),
        (
            "Marketo 1% churn: API calls",
            _ratio(churned, ideal_churn),
            f"{churn:,} enters (leads + list add), {churn:,} exits (list remove by the lead ids saved "
            f"at add; {lookups} lookups by email)",
        ),
        (
            "Marketo first sync: request rate / limit",
            f"{served_first / elapsed / limit_rate:.2f} average; {peak / 100:.2f} peak window",
            f"{served_first:,} calls in {elapsed:.1f} s against 100 per {window:g} s (20 s x{scale:g}); "
            f"606 answers: {refused}",
        ),
    ]


def brevo_rows(members: int, churn: int, folder: Path) -> list[tuple[str, str, str]]:
    from lytics_provider.hooks.brevo import BrevoHook, BrevoListDestination
    from lytics_sandbox.brevo import BrevoSandbox

    with BrevoSandbox() as stand:
        os.environ["AIRFLOW_CONN_BREVO_DEFAULT"] = json.dumps(stand.connection())
        list_id = str(stand.data.add_list("Bench"))

        def dest() -> BrevoListDestination:
            return BrevoListDestination(BrevoHook(), list_id, "email", {}, batch_size=IMPORT)

        payload = {"FIRSTNAME": "Ada"}
        elapsed = _act(folder, "bv_first", _rows("add", list_id, 0, members, payload), dest())
        first, refused, peak = stand.total_calls, stand.rate_limited, stand.peak()
        stand.reset_counters()
        rows = _rows("add", list_id, members, churn, payload) + _rows("remove", list_id, 0, churn, {})
        _act(folder, "bv_churn", rows, dest())
        churned = stand.total_calls
        held = len(stand.data.members(int(list_id)))
    ideal_churn = math.ceil(churn / IMPORT) + math.ceil(churn / REMOVE)
    return [
        (
            "Brevo first sync: API calls",
            _ratio(first, math.ceil(members / IMPORT)),
            f"contact imports of 5,000 into the list; {held:,} in the list after the churn run",
        ),
        (
            "Brevo 1% churn: API calls",
            _ratio(churned, ideal_churn),
            f"{churn:,} enters in imports of 5,000, {churn:,} exits in removals of 150",
        ),
        (
            "Brevo first sync: request rate / limit",
            f"{first / elapsed / 10:.2f} average; {peak / 10:.2f} peak second",
            f"{first} calls in {elapsed:.1f} s against 10 a second: each call carries 5,000 contacts, so the "
            f"run is bound by the imports' own time, not the limit; 429 answers: {refused}",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sfmc_marketo_brevo", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument("--journey-members", type=int, default=2_000)
    parser.add_argument("--time-scale", type=float, default=1.0, help="Marketo's 20 s window x this")
    parser.add_argument(
        "--only", choices=("sfmc", "marketo", "brevo"), action="append", help="run only these"
    )
    args = parser.parse_args(argv)
    churn = max(1, int(args.members * args.churn))
    with tempfile.TemporaryDirectory(prefix="smb-bench-") as tmp:
        os.environ["LYTICS_DATA_DIR"] = tmp
        folder = Path(tmp)
        only = set(args.only or ("sfmc", "marketo", "brevo"))
        rows = sfmc_rows(args.members, churn, args.journey_members, folder) if "sfmc" in only else []
        rows += marketo_rows(args.members, churn, args.time_scale, folder) if "marketo" in only else []
        rows += brevo_rows(args.members, churn, folder) if "brevo" in only else []
    print("| measure | value | notes |")
    print("|---|---|---|")
    for measure, value, notes in rows:
        print(f"| {measure} | {value} | {notes} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
