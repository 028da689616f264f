"""Keep secrets that travel in URLs out of the HTTP library's own debug log.

``urllib3`` logs every request line at DEBUG, query string included, so an API key sent as a query
parameter (the GA4 Measurement Protocol's ``api_secret``) would reach the task log whenever DEBUG is
on. :func:`hide_in_http_logs` registers secrets with one filter on the ``urllib3`` loggers that
replaces them with ``***`` before any handler sees the record.
"""

from __future__ import annotations

import logging
import threading

HTTP_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "requests")


class SecretRedactingFilter(logging.Filter):
    """Replaces every registered secret in a record's message with ``***``."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, *secrets: str) -> None:
        with self._lock:
            self.secrets.update(s for s in secrets if s and len(s) >= 4)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        shown = message
        for secret in sorted(self.secrets, key=len, reverse=True):
            shown = shown.replace(secret, "***")
        if shown != message:
            record.msg, record.args = shown, None
        return True


_FILTER = SecretRedactingFilter()


def hide_in_http_logs(*secrets: str, loggers: tuple[str, ...] = HTTP_LOGGERS) -> None:
    """Mask ``secrets`` in the records of ``loggers`` (the HTTP libraries') from now on (idempotent)."""
    _FILTER.add(*secrets)
    for name in loggers:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
