"""Service errors that fail an Airflow task without Airflow retries.

``pipeline.http`` raises :class:`~lytics_provider.pipeline.http.PermanentServiceError` and
:class:`~lytics_provider.pipeline.http.AuthError` for 400/401/403/404/422 and stays free of
Airflow (the scan fetcher's child process imports it). The hooks hand :data:`TASK_ERRORS` to
their HTTP clients, so the same failures are raised as these subclasses, which are also
``AirflowFailException``: code that catches the service errors keeps working, and an uncaught
one fails the task at once instead of waiting out its retries.
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.pipeline.http import AuthError, ErrorTypes, PermanentServiceError


class PermanentTaskError(PermanentServiceError, AirflowFailException):
    """400/401/403/404/422 in a task: the request is wrong; fail without retries."""


class AuthTaskError(AuthError, PermanentTaskError):
    """401/403 in a task: the connection's credentials are wrong or lack permission."""


TASK_ERRORS = ErrorTypes(permanent=PermanentTaskError, auth=AuthTaskError)
