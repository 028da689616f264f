"""Sync Status: every contact's outcome written to Lytics' ``dotmailer_export_status`` stream."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from lytics_provider.operators.dotdigital_options import DotdigitalStep
from lytics_provider.sync.identifiers import is_email
from lytics_provider.sync.plan import SyncPlan

STATUS_STREAM = "dotmailer_export_status"


class DotdigitalStatusSync(DotdigitalStep):
    """Writes the run's outcomes to ``dotmailer_export_status``."""

    def _status_records(self, plan: SyncPlan) -> Iterator[dict[str, Any]]:
        stamp = int(time.time() * 1000)
        for email, book, _, _, status, account_status, _ in plan.iter_outcomes():
            if not is_email(email):
                continue
            record: dict[str, Any] = {"email": email, "dm_addressbook_status_ts": stamp}
            if book != "account":
                record["dm_addressbook_status"] = {f"{self.account_id}_{book}": status.lower()}
            if account_status:
                record["dm_account_status"] = {self.account_id: account_status.lower()}
            yield record

    def _sync_status(self, plan: SyncPlan) -> dict[str, int]:
        from lytics_provider.hooks.lytics import LyticsHook

        result = LyticsHook(self.lytics_conn_id).collect_json(STATUS_STREAM, self._status_records(plan))
        self.log.info("Wrote %d status records to %s", result.accepted, STATUS_STREAM)
        return {"accepted": result.accepted, "rejected": result.rejected, "requests": result.requests}
