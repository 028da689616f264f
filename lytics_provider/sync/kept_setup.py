"""Set-up ids a job found on an earlier run: a destination's list, field or segment ids.

A delivery that must find its destination's objects before it sends (the audience to write to,
the custom field and segment it maintains) looks them up once and keeps what it
found in the job's :class:`~lytics_provider.sync.refs.RefStore`; later runs reuse the ids
without looking them up. The adapter forgets a kept value when the vendor answers that the id
no longer exists, and the next look-up keeps the new one. Values are JSON.
"""

from __future__ import annotations

import json
from typing import Any

from lytics_provider.sync.refs import RefStore

SETUP_TARGET = "setup"


class KeptSetup:
    """``key -> value`` of one job's destination set-up.

    :param job_id: the job whose state keeps the values.
    :param scope: what the keys belong to (a connection), so two destinations never share one.
    """

    def __init__(self, job_id: str, scope: str) -> None:
        self.job_id = job_id
        self.scope = scope

    def _ident(self, key: str) -> str:
        return f"{self.scope}:{key}"

    def get(self, key: str) -> Any | None:
        """The value kept under ``key``, else None."""
        refs = RefStore(self.job_id)
        try:
            found = refs.find(SETUP_TARGET, [self._ident(key)]).get(self._ident(key))
        finally:
            refs.close()
        return None if found is None else json.loads(found)

    def keep(self, key: str, value: Any) -> None:
        """Keep ``value`` under ``key`` for the next runs."""
        refs = RefStore(self.job_id)
        try:
            refs.save(SETUP_TARGET, [(self._ident(key), json.dumps(value, sort_keys=True))])
        finally:
            refs.close()

    def forget(self, key: str) -> None:
        """Drop the value under ``key`` (the vendor no longer has it)."""
        refs = RefStore(self.job_id)
        try:
            refs.forget(SETUP_TARGET, [self._ident(key)])
        finally:
            refs.close()
