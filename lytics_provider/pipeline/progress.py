"""Progress lines for long steps: count, rate and ETA, at most every few seconds."""

from __future__ import annotations

import logging
import time


class Progress:
    """Log ``label``: done/total, rate per second and ETA, throttled to one line per ``every`` seconds."""

    def __init__(
        self, log: logging.Logger, label: str, total: int | None = None, every: float = 10.0
    ) -> None:
        self.log = log
        self.label = label
        self.total = total
        self.every = every
        self.done = 0
        self.started = time.monotonic()
        self._last = self.started

    def advance(self, count: int) -> None:
        """Add ``count`` items and log if the interval has passed."""
        self.done += count
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self.log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        """The current progress line."""
        elapsed = max(1e-9, (now or time.monotonic()) - self.started)
        rate = self.done / elapsed
        text = f"{self.label}: {self.done:,}"
        if self.total:
            text += f"/{self.total:,} ({100 * self.done / self.total:.1f}%)"
        text += f", {rate:,.0f}/s"
        if self.total and rate > 0 and self.done < self.total:
            text += f", ETA {(self.total - self.done) / rate:,.0f}s"
        return text

    def finish(self) -> float:
        """Log the final line; return the elapsed seconds."""
        self.log.info("%s (done)", self.line())
        return time.monotonic() - self.started
