"""API calls and request rate of the HubSpot and Klaviyo audience exports, against their stand-ins.

Run:  .venv/bin/python -m bench.hubspot_klaviyo [--members 100000] [--churn 0.01] [--time-scale 1]

Each destination gets a synthetic plan through the sync engine (no Lytics scan): a first sync of
``--members`` members, then a churn run in which ``--churn`` of them exit and as many new ones
enter. The stand-ins enforce the vendors' published rate limits (HubSpot: 100 requests per rolling
10 seconds; Klaviyo: 10/s burst and 150/m steady per endpoint), with their windows shortened by
``--time-scale`` (and the clients' budgets with them) so the run takes seconds, not minutes.
The ideal call count is ``ceil(n / the vendor's max batch)`` (HubSpot: 100 contacts per batch
upsert; Klaviyo: 10,000 profiles per bulk import job), n being the members the run sends.
Prints a markdown table ``| measure | value | notes |``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DESTINATION_BENCH = "HubSpot / Klaviyo"
HUBSPOT_BATCH = 100
KLAVIYO_JOB = 10_000


def _rows(kind: str, target: str, start: int, count: int) -> list[tuple[Any, ...]]:
    payload = json.dumps({"firstname": "Ada"})
    return [
        (kind, target, f"u{i}", f"member{i}@example.com", None, payload if kind == "add" else None)
        for i in range(start, start + count)
    ]


def _plan(folder: Path, name: str, rows: list[tuple[Any, ...]]) -> Any:
    from lytics_provider.sync.plan import SyncPlan

    plan = SyncPlan(folder / f"{name}.db")
    plan.add_work(rows)
    return plan


def _counted(server: Any) -> Counter[str]:
    return Counter({k: v for k, v in server.calls.items() if v})


def hubspot_rows(members: int, churn: int, scale: float, folder: Path) -> list[tuple[str, str, str]]:
    from lytics_provider.hooks.hubspot import HubspotHook, HubspotListDestination
    from lytics_provider.sync.refs import RefStore
    from lytics_sandbox.hubspot import HubspotSandbox

    interval = 10.0 * scale
    with HubspotSandbox(limit=100, interval=interval) as stand:
        os.environ["AIRFLOW_CONN_HUBSPOT_DEFAULT"] = json.dumps(stand.connection(interval_seconds=interval))
        list_id = stand.data.add_list("Bench")["listId"]

        def destination(saved_ids: bool = True) -> HubspotListDestination:
            refs = RefStore("bench_hubspot") if saved_ids else None
            return HubspotListDestination(
                HubspotHook(), list_id, "Bench", "email", {}, "remove", batch_size=5000, refs=refs
            )

        stand.reset_counters()
        started = time.perf_counter()
        with closing(_plan(folder, "hs_first", _rows("add", list_id, 0, members))) as plan:
            destination().act(plan)
        elapsed = time.perf_counter() - started
        first = _counted(stand)
        refused_first = stand.window.refused if stand.window else 0
        held_first = len(stand.data.memberships[list_id])

        stand.reset_counters()
        rows = _rows("add", list_id, members, churn) + _rows("remove", list_id, 0, churn)
        with closing(_plan(folder, "hs_churn", rows)) as plan:
            destination().act(plan)
        churned = _counted(stand)
        stand.reset_counters()
        with closing(_plan(folder, "hs_churn_lookup", _rows("remove", list_id, churn, churn))) as plan:
            destination(saved_ids=False).act(plan)
        looked_up = _counted(stand)

    first_calls = sum(first.values())
    ideal_first = math.ceil(members / HUBSPOT_BATCH)
    churn_calls = sum(churned.values())
    ideal_churn = math.ceil(2 * churn / HUBSPOT_BATCH)
    rate = first_calls / elapsed
    limit_rate = 100 / interval
    return [
        (
            "HubSpot first sync: API calls",
            f"{first_calls:,} ({first_calls / ideal_first:.2f}x ideal {ideal_first:,})",
            f"{first['contacts_upsert']:,} batch upserts + {first['memberships_add']} list adds "
            f"(5,000 a batch); {held_first:,} members in the list",
        ),
        (
            "HubSpot 1% churn: API calls",
            f"{churn_calls} ({churn_calls / ideal_churn:.2f}x ideal {ideal_churn})",
            f"{churn} enters: {churned['contacts_upsert']} upserts, {churned['memberships_add']} list add; "
            f"{churn} exits: {churned['contacts_read']} reads (record ids saved at add), "
            f"{churned['memberships_remove']} list remove",
        ),
        (
            "HubSpot 1% churn, exits without saved record ids: API calls for the exits",
            f"{sum(looked_up.values())}",
            f"{churn} exits of members added before the ids were kept: {looked_up['contacts_read']} reads by "
            f"email (100 a call) + {looked_up['memberships_remove']} list remove",
        ),
        (
            "HubSpot first sync: request rate / limit",
            f"{rate / limit_rate:.2f}",
            f"{rate:.1f} calls/s against 100 per {interval:g} s (the 10 s window x{scale:g}); "
            f"429 answers: {refused_first}",
        ),
    ]


def klaviyo_rows(members: int, churn: int, scale: float, folder: Path) -> list[tuple[str, str, str]]:
    from lytics_provider.hooks.klaviyo import KlaviyoHook, KlaviyoListDestination
    from lytics_sandbox.klaviyo import KlaviyoSandbox

    with KlaviyoSandbox(enforce_limits=True, time_scale=scale, polls_to_complete=2) as stand:
        budget = 150
        os.environ["AIRFLOW_CONN_KLAVIYO_DEFAULT"] = json.dumps(stand.connection(calls_per_minute=budget))
        list_id = stand.data.add_list("Bench")["id"]

        def destination() -> KlaviyoListDestination:
            return KlaviyoListDestination(
                KlaviyoHook(), list_id, "Bench", "email", {}, "remove", poll_interval=0
            )

        stand.reset_counters()
        started = time.perf_counter()
        with closing(_plan(folder, "kl_first", _rows("add", list_id, 0, members))) as plan:
            destination().act(plan)
        elapsed = time.perf_counter() - started
        first = _counted(stand)
        refused_first = stand.refused
        tier = stand.limits["M"]
        peak_minute, peak_second = tier.peak(60.0), tier.peak(1.0)
        held_first = len(stand.data.members[list_id])

        stand.reset_counters()
        rows = _rows("add", list_id, members, churn) + _rows("remove", list_id, 0, churn)
        with closing(_plan(folder, "kl_churn", rows)) as plan:
            destination().act(plan)
        churned = _counted(stand)

    first_calls = sum(first.values())
    ideal_first = math.ceil(members / KLAVIYO_JOB)
    churn_calls = sum(churned.values())
    ideal_churn = math.ceil(churn / KLAVIYO_JOB) + math.ceil(churn / 1000)
    writes_first = first["jobs_create"]
    return [
        (
            "Klaviyo first sync: API calls",
            f"{first_calls} ({first_calls / ideal_first:.2f}x ideal {ideal_first}; "
            f"writes {writes_first / ideal_first:.2f}x)",
            f"{writes_first} bulk import jobs + {first['job_get']} status reads (the stand-in completes a "
            f"job on its 2nd read); {held_first:,} members in the list; 429 answers: {refused_first}",
        ),
        (
            "Klaviyo 1% churn: API calls",
            f"{churn_calls} ({churn_calls / ideal_churn:.2f}x ideal {ideal_churn})",
            f"{churn} enters: {churned['jobs_create']} job + {churned['job_get']} status reads; "
            f"{churn} exits: {churned['profiles']} reads by email (100 a call) + "
            f"{churned['list_remove']} list remove (1,000 a call); ideal = 1 job + 1 remove",
        ),
        (
            "Klaviyo first sync: peak calls / limit",
            f"{peak_minute / budget:.2f} of 150/m; {peak_second / 10:.1f} of 10/s",
            f"{first_calls} calls in {elapsed:.1f} s: the run waits on its jobs, far below the limits "
            f"(windows x{scale:g}); 429 answers: {refused_first}",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.hubspot_klaviyo", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument("--time-scale", type=float, default=1.0, help="rate-limit windows x this")
    args = parser.parse_args(argv)
    churn = max(1, int(args.members * args.churn))
    with tempfile.TemporaryDirectory(prefix="hk-bench-") as tmp:
        os.environ["LYTICS_DATA_DIR"] = tmp
        folder = Path(tmp)
        rows = hubspot_rows(args.members, churn, args.time_scale, folder)
        rows += klaviyo_rows(args.members, churn, args.time_scale, folder)
    print("| measure | value | notes |")
    print("|---|---|---|")
    for measure, value, notes in rows:
        print(f"| {measure} | {value} | {notes} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
