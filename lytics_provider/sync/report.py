"""The sync run's typed report and its rejects file (one record shape, CSV or JSON lines)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lytics_provider.sync.plan import SyncPlan

OUTCOME_FIELDS = ("ident", "target", "action", "uid", "status", "detail", "reason")
DEFAULT_REJECT_COLUMNS = (
    ("ident", "ident"),
    ("target", "target"),
    ("action", "action"),
    ("uid", "uid"),
    ("status", "status"),
    ("reason", "reason"),
)


def write_rejects(
    plan: SyncPlan, path: Path, columns: Sequence[tuple[str, str]] = DEFAULT_REJECT_COLUMNS
) -> int:
    """Write the run's rejected rows (outcomes with a reason) to ``path``; return how many.

    :param columns: ``(output name, outcome field)`` pairs; an outcome field is one of
        ``OUTCOME_FIELDS``. A ``.csv`` path gets a header row, any other path JSON lines.
    """
    index = [OUTCOME_FIELDS.index(source) for _, source in columns]
    names = [name for name, _ in columns]
    tmp = path.with_name(f".{path.name}.part")
    count = 0
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle) if path.suffix == ".csv" else None
        if writer:
            writer.writerow(names)
        for outcome in plan.iter_outcomes(rejected_only=True):
            values = [outcome[i] for i in index]
            if writer:
                writer.writerow(values)
            else:
                handle.write(json.dumps(dict(zip(names, values, strict=True)), ensure_ascii=False) + "\n")
            count += 1
    tmp.replace(path)
    return count


@dataclass
class SyncReport:
    """What a sync run planned and did; ``as_dict`` is the task's XCom value.

    :param planned: counts from planning (enters, exits, changes, adds, removes, ...).
    :param outcomes: ``"action:status" -> rows``.
    :param destination: destination-specific figures (ids, call counts, bulk jobs).
    """

    planned: dict[str, Any]
    dry_run: bool
    exit_guard: dict[str, Any] | None = None
    outcomes: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    rejects_file: str | None = None
    destination: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        report: dict[str, Any] = {**self.destination, "planned": self.planned, "dry_run": self.dry_run}
        if self.exit_guard is not None:
            report["exit_guard"] = self.exit_guard
        if not self.dry_run:
            report.update(outcomes=self.outcomes, rejected=self.rejected, rejects_file=self.rejects_file)
        return report
