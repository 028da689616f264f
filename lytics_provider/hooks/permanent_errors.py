"""Fail a task at once on errors that no retry can fix, raised by the official hooks' clients.

The REST hooks of this package already raise :mod:`hooks.task_errors` for 400/401/403/404/422.
The file-drop transports and the warehouses go through other clients (paramiko for SFTP, boto3,
the Google Cloud and Azure Storage clients, the Snowflake connector, psycopg), whose errors
Airflow would retry like any other: a wrong password or a bucket that does not exist then costs
every retry and its delay before the run fails. :class:`FailFastOnPermanentErrors` recognises
those errors by their type and code, without importing any of the clients, and re-raises them as
an ``AirflowFailException`` that keeps the original as its cause. Dropped connections, throttling
and server errors are not recognised, so they are still retried.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

# Error class names by client, each a mistake in the connection or the job config.
_PERMANENT_CLASS_NAMES = {
    "paramiko": {"AuthenticationException", "BadAuthenticationType", "PasswordRequiredException"},
    "google.api_core": {"NotFound", "Forbidden", "Unauthorized", "BadRequest"},
    "snowflake.connector": {"ProgrammingError"},
}
# S3 error codes that mean a wrong bucket or wrong credentials.
_S3_CODES = {
    "NoSuchBucket",
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidBucketName",
}
# Azure Storage error codes that mean a wrong container, account key or permission.
_AZURE_CODES = {
    "ContainerNotFound",
    "AuthenticationFailed",
    "AuthorizationFailure",
    "AuthorizationPermissionMismatch",
    "InvalidResourceName",
    "AccountIsDisabled",
}
# Kinesis and SQS error codes that mean a missing stream or queue, or refused credentials.
_STREAM_QUEUE_CODES = {
    "ResourceNotFoundException",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "AccessDeniedException",
}
# SQLSTATE classes: 28 invalid authorization, 3D invalid catalog, 3F invalid schema, 42 syntax
# error or access rule violation (a table or column that does not exist, no privilege).
_SQLSTATE_CLASSES = ("28", "3D", "3F", "42")


class PermanentTaskFailure(AirflowFailException):
    """A delivery error that retrying cannot fix (its cause is the client's own error)."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)


def permanent_reason(exc: BaseException) -> str | None:
    """Why ``exc`` (or an error it was raised from) cannot be fixed by a retry, or None."""
    for error in _chain(exc):
        if isinstance(error, AirflowFailException):
            return None
        for cls in type(error).__mro__:
            for prefix, names in _PERMANENT_CLASS_NAMES.items():
                if cls.__module__.startswith(prefix) and cls.__name__ in names:
                    return f"{cls.__module__}.{cls.__name__}"
        response = getattr(error, "response", None)
        code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
        if code in _S3_CODES:
            return f"S3 error {code}"
        azure_code = getattr(error, "error_code", None)
        if type(error).__module__.startswith("azure.") and azure_code in _AZURE_CODES:
            return f"Azure Storage error {azure_code}"
        if code in _STREAM_QUEUE_CODES:
            return f"AWS error {code}"
        state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if isinstance(state, str) and state[:2] in _SQLSTATE_CLASSES:
            return f"SQLSTATE {state}"
    return None


def _fail_fast(execute: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(execute)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return execute(self, *args, **kwargs)
        except Exception as exc:
            reason = permanent_reason(exc)
            if reason is None:
                raise
            raise PermanentTaskFailure(
                f"{type(exc).__name__}: {exc} ({reason}: a retry cannot fix this; check the task's "
                "connection, its credentials and the bucket, stream, queue, dataset, schema or table the job "
                "names)"
            ) from exc

    return wrapper


class FailFastOnPermanentErrors:
    """Operator mixin: ``execute`` and ``execute_complete`` (the resumption after a deferral) of
    every subclass that defines them fail the task without Airflow retries on an error
    :func:`permanent_reason` recognises."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("execute", "execute_complete"):
            method = vars(cls).get(name)
            if method is not None and not getattr(method, "_fails_fast", False):
                wrapped = _fail_fast(method)
                wrapped._fails_fast = True  # type: ignore[attr-defined]
                setattr(cls, name, wrapped)
