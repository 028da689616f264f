"""Which client errors fail a delivery task at once (no Airflow retry) and which stay retried."""

from __future__ import annotations

import pytest
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from lytics_provider.hooks.permanent_errors import (
    FailFastOnPermanentErrors,
    PermanentTaskFailure,
    permanent_reason,
)


def _client_error(code: str, status: int):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {}}, "PutObject")


class _SqlError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


def test_wrong_credentials_or_missing_targets_are_permanent() -> None:
    import paramiko
    from google.api_core.exceptions import Forbidden, NotFound
    from snowflake.connector.errors import ProgrammingError

    assert permanent_reason(paramiko.AuthenticationException("bad password"))
    assert permanent_reason(NotFound("bucket")) and permanent_reason(Forbidden("no access"))
    assert permanent_reason(_client_error("NoSuchBucket", 404)) == "S3 error NoSuchBucket"
    assert permanent_reason(ProgrammingError("002003: does not exist"))
    assert permanent_reason(_SqlError("3F000")) == "SQLSTATE 3F000"  # invalid schema name
    assert permanent_reason(_SqlError("28P01"))  # wrong password


def test_an_error_raised_from_a_permanent_one_is_permanent() -> None:
    try:
        try:
            raise _client_error("NoSuchBucket", 404)
        except Exception:
            raise RuntimeError("Failed to upload file") from None
    except RuntimeError as wrapped:
        assert permanent_reason(wrapped) is None  # `from None` hides the cause on purpose
    try:
        try:
            raise _client_error("AccessDenied", 403)
        except Exception as exc:
            raise RuntimeError("Failed to upload file") from exc
    except RuntimeError as wrapped:
        assert permanent_reason(wrapped) == "S3 error AccessDenied"


def test_transient_errors_stay_retried() -> None:
    from google.api_core.exceptions import ServiceUnavailable, TooManyRequests

    assert permanent_reason(ConnectionError("reset")) is None
    assert permanent_reason(TimeoutError()) is None
    assert permanent_reason(_client_error("SlowDown", 503)) is None
    assert permanent_reason(ServiceUnavailable("try later")) is None
    assert permanent_reason(TooManyRequests("slow down")) is None
    assert permanent_reason(_SqlError("40001")) is None  # serialization failure: retry


def test_the_mixin_fails_the_task_without_retries_and_keeps_the_cause() -> None:
    from google.api_core.exceptions import NotFound

    class Export(FailFastOnPermanentErrors, BaseOperator):
        def execute(self, context):
            raise NotFound("bucket lytics-exports")

    class Flaky(Export):
        def execute(self, context):
            raise ConnectionError("reset by peer")

    with pytest.raises(PermanentTaskFailure) as raised:
        Export(task_id="deliver").execute({})
    assert isinstance(raised.value, AirflowFailException)
    assert isinstance(raised.value.__cause__, NotFound)
    assert "bucket lytics-exports" in str(raised.value) and "retry cannot fix" in str(raised.value)
    with pytest.raises(ConnectionError):
        Flaky(task_id="deliver").execute({})


def test_resuming_after_a_deferral_fails_fast_too() -> None:
    from google.api_core.exceptions import Forbidden

    class Deferred(FailFastOnPermanentErrors, BaseOperator):
        def execute_complete(self, context, event):
            raise Forbidden("dataset lytics")

    with pytest.raises(PermanentTaskFailure):
        Deferred(task_id="deliver").execute_complete({}, {"status": "success"})


def test_azure_storage_errors_by_code() -> None:
    from azure.core.exceptions import ClientAuthenticationError, ResourceNotFoundError, ServiceRequestError

    missing = ResourceNotFoundError("The specified container does not exist.")
    missing.error_code = "ContainerNotFound"
    wrong_key = ClientAuthenticationError("Server failed to authenticate the request.")
    wrong_key.error_code = "AuthenticationFailed"
    blob_gone = ResourceNotFoundError("The specified blob does not exist.")
    blob_gone.error_code = "BlobNotFound"
    assert permanent_reason(missing) == "Azure Storage error ContainerNotFound"
    assert permanent_reason(wrong_key) == "Azure Storage error AuthenticationFailed"
    assert permanent_reason(blob_gone) is None  # a blob removed while listing: the retry lists again
    assert permanent_reason(ServiceRequestError("connection reset")) is None
    try:
        try:
            raise missing
        except Exception as exc:
            raise FileNotFoundError("Azure container 'x' does not exist; create it") from exc
    except FileNotFoundError as wrapped:
        assert permanent_reason(wrapped) == "Azure Storage error ContainerNotFound"
