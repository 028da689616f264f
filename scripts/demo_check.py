"""Check the demo's Mapp export: the newest CSV on the SFTP server against the sandbox audience."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import requests
import yaml

MEMBERSHIP = "user.CustomAttribute.SegmentMembership"


def scan(url: str, audience: str, token: str) -> list[dict]:
    """Every member of ``audience`` read straight from the Lytics scan API."""
    members, start = [], ""
    while True:
        body = requests.get(
            f"{url}/api/segment/{audience}/scan",
            params={"limit": 100, "start": start},
            headers={"Authorization": token},
            timeout=30,
        ).json()
        members.extend(body.get("data") or [])
        start = body.get("_next") or ""
        if not start or not body.get("data"):
            return members


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sftp-root", type=Path, required=True)
    parser.add_argument("--lytics-url", required=True)
    parser.add_argument("--audience", required=True)
    parser.add_argument("--job", type=Path, required=True)
    parser.add_argument("--token", default="sandbox-token")
    args = parser.parse_args()

    files = sorted(args.sftp_root.rglob("export-lytics-*.csv"), key=lambda p: p.stat().st_mtime)
    if not files:
        print(f"no export-lytics-*.csv under {args.sftp_root}", file=sys.stderr)
        return 1
    landed = files[-1]
    job = yaml.safe_load(args.job.read_text())
    mapping: dict[str, str] = job["field_mapping"]
    identifier = job.get("identifier_field", "email")
    id_header = mapping.get(identifier, identifier)

    with landed.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        rows = {row[id_header]: row for row in reader}

    expected_header = list(mapping.values())
    if job.get("include_membership", True):
        expected_header.append(MEMBERSHIP)
    members = [m for m in scan(args.lytics_url, args.audience, args.token) if m.get(identifier)]
    problems = []
    if sorted(header) != sorted(expected_header):
        problems.append(f"header {header} != expected {expected_header}")
    if len(rows) != len(members):
        problems.append(
            f"{len(rows)} rows in the file, {len(members)} members with {identifier!r} in the audience"
        )
    for member in members:
        row = rows.get(str(member[identifier]))
        if row is None:
            problems.append(f"member {member['_uid']} missing from the file")
            break
        for field, column in mapping.items():
            value = member.get(field)
            shown = (
                ",".join(map(str, value))
                if isinstance(value, list)
                else ("" if value is None else str(value))
            )
            if isinstance(value, (str, int)) and row[column] != shown:
                problems.append(f"member {member['_uid']}: {column} = {row[column]!r}, expected {shown!r}")
                break
    print(f"Mapp export landed on the SFTP server: {landed}")
    print(f"    header: {','.join(header)}")
    print(
        f"    rows:   {len(rows):,} (audience {args.audience!r}: {len(members):,} members with {identifier})"
    )
    if problems:
        print("MISMATCH:\n  " + "\n  ".join(problems[:10]), file=sys.stderr)
        return 1
    print("    every row matches the audience in the Lytics sandbox")
    return 0


if __name__ == "__main__":
    sys.exit(main())
