"""Fault injection for the sandbox HTTP servers, switchable per test.

A :class:`FaultPlan` holds :class:`FaultRule` objects. The server asks the plan once per request
(:meth:`FaultPlan.decide`); the first rule that matches and is due returns itself, and the server
acts on it:

* ``"429"``: respond 429; a ``Retry-After`` header only when ``retry_after`` is set (the real
  Lytics API sends none, so clients must cope without it).
* ``"5xx"``: respond ``status`` (500, 502 or 503; default 500).
* ``"slow"``: sleep ``delay`` seconds (1.0 when left at 0) and then serve normally.
* ``"drop"``: send a status line, headers and part of the body, then close the socket.
* ``"expired_cursor"``: respond 400 "cursor expired"; only requests whose query carries a
  non-empty ``cursor_param`` (default ``start``) match.
* ``"early_end"``: serve the request, then answer its page with ``data`` emptied and ``_next``
  cleared (``total`` kept): a scan that ends in the middle. Like ``expired_cursor``, only
  requests with a non-empty ``cursor_param`` match, so a restarted scan's first page passes.
* ``"error_envelope"``: respond 200 with an error envelope, ``{"status": <status, default 500>,
  "message": ..., "data": null}``.
* ``"truncated"``: serve the request, then send only the first half of its body (with a
  Content-Length that matches: the JSON is cut short, the HTTP message is not).

Counting: a rule sees only requests matching its ``path_regex`` (and method, when given). The first
``after`` of those pass untouched; afterwards the rule fires on every ``every``-th request (every one
when ``every`` is None) until it has fired ``times`` times (``None`` = without limit).
Any rule with ``delay`` > 0 sleeps that long before its injected response.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal[
    "429", "5xx", "slow", "drop", "expired_cursor", "early_end", "error_envelope", "truncated"
]
KINDS: frozenset[str] = frozenset(
    {"429", "5xx", "slow", "drop", "expired_cursor", "early_end", "error_envelope", "truncated"}
)
ALTERED_KINDS: frozenset[str] = frozenset({"early_end", "truncated"})
"""Kinds that serve the request and then change its successful response."""
_CURSOR_KINDS = frozenset({"expired_cursor", "early_end"})


@dataclass
class FaultRule:
    """One fault to inject; see the module docstring for the counting rules."""

    kind: FaultKind
    path_regex: str = ".*"
    times: int | None = 1
    after: int = 0
    every: int | None = None
    retry_after: int | float | str | None = None
    delay: float = 0.0
    status: int | None = None
    method: str | None = None
    cursor_param: str = "start"
    seen: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(KINDS)}")
        if self.every is not None and self.every < 1:
            raise ValueError("every must be >= 1")
        if self.kind == "5xx" and self.status is not None and not 500 <= self.status <= 599:
            raise ValueError("5xx faults need a status between 500 and 599")
        if self.kind == "error_envelope" and self.status is not None and self.status < 400:
            raise ValueError("error_envelope faults need an envelope status of 400 or more")
        self._pattern = re.compile(self.path_regex)

    @property
    def response_status(self) -> int:
        """HTTP status the injected response carries (200 for ``slow``, ``drop`` and the body faults)."""
        if self.kind in ("error_envelope", "early_end", "truncated"):
            return 200
        if self.kind == "429":
            return 429
        if self.kind == "5xx":
            return self.status or 500
        if self.kind == "expired_cursor":
            return 400
        return self.status or 200

    @property
    def sleep_seconds(self) -> float:
        """Seconds to wait before acting."""
        if self.kind == "slow" and self.delay <= 0:
            return 1.0
        return self.delay

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def matches(self, method: str, path: str, query: dict[str, str]) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        if self._pattern.search(path) is None:
            return False
        return not (self.kind in _CURSOR_KINDS and not query.get(self.cursor_param))

    def _due(self) -> bool:
        """Count one matching request; True when the rule fires on it (caller holds the lock)."""
        self.seen += 1
        if self.exhausted or self.seen <= self.after:
            return False
        if self.every is not None and (self.seen - self.after - 1) % self.every:
            return False
        self.fired += 1
        return True


class FaultPlan:
    """Thread-safe list of fault rules consulted before every request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self.injected: Counter[str] = Counter()

    def add(self, rule: FaultRule | FaultKind, **kwargs: object) -> FaultRule:
        """Add a rule: ``add(FaultRule(...))`` or ``add("429", path_regex=..., times=...)``."""
        if not isinstance(rule, FaultRule):
            rule = FaultRule(rule, **kwargs)  # type: ignore[arg-type]
        elif kwargs:
            raise TypeError("keyword arguments are only accepted together with a fault kind")
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule and reset the injected counts."""
        with self._lock:
            self._rules.clear()
            self.injected.clear()

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    @property
    def active(self) -> bool:
        return bool(self._rules)

    def decide(self, method: str, path: str, query: dict[str, str]) -> FaultRule | None:
        """Return the rule to apply to this request, or None to serve it normally."""
        if not self._rules:
            return None
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path, query) and rule._due():
                    self.injected[rule.kind] += 1
                    return rule
        return None
