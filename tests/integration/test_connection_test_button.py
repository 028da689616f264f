"""The connection form's Test button (``hook.test_connection()``) against the sandboxes: right
credentials pass, wrong ones fail naming what is wrong, and no secret is in the message."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from lytics_provider.hooks.dotdigital import DotdigitalHook
from lytics_provider.hooks.icontact import IContactHook
from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.pipeline import http
from lytics_sandbox.dotdigital import DotdigitalSandbox
from lytics_sandbox.icontact import IContactData, IContactSandbox
from lytics_sandbox.lytics import LyticsSandbox
from tests.helpers import lytics_conn


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("LYTICS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(http.RetryPolicy, "backoff", lambda self, attempt: 0.0)


@pytest.fixture
def free_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port


def test_lytics(monkeypatch, free_port) -> None:
    with LyticsSandbox() as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(sandbox.base_url))
        ok, message = LyticsHook().test_connection()
        assert ok, message
        assert message.startswith(f"Connected to Lytics at {sandbox.base_url}: the token reads ")

        monkeypatch.setenv(
            "AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(sandbox.base_url, token="wrong-token-123")
        )
        ok, message = LyticsHook().test_connection()
        assert not ok
        assert "refused the credentials of connection 'lytics_default' (401)" in message
        assert "Password field" in message
        assert "wrong-token-123" not in message

    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", lytics_conn(f"http://127.0.0.1:{free_port}"))
    ok, message = LyticsHook().test_connection()
    assert not ok and message.startswith(f"Cannot reach http://127.0.0.1:{free_port}")
    assert "sandbox-token" not in message

    monkeypatch.setenv("AIRFLOW_CONN_LYTICS_DEFAULT", json.dumps({"conn_type": "lytics", "host": "h"}))
    assert LyticsHook().test_connection() == (
        False,
        "Connection 'lytics_default' has no API token: put the Lytics token in its Password field.",
    )


def dd_conn(sandbox: DotdigitalSandbox, host: str | None = None, password: str | None = None) -> str:
    return json.dumps(
        {
            "conn_type": "dotdigital",
            "host": host or sandbox.base_url,
            "login": sandbox.username,
            "password": password or sandbox._password,
        }
    )


def test_dotdigital(monkeypatch, free_port) -> None:
    with DotdigitalSandbox() as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_DOTDIGITAL_DEFAULT", dd_conn(sandbox))
        ok, message = DotdigitalHook().test_connection()
        assert ok, message
        assert f"account {sandbox.account_id}" in message

        monkeypatch.setenv("AIRFLOW_CONN_DOTDIGITAL_DEFAULT", dd_conn(sandbox, password="wrong-pass-456"))
        ok, message = DotdigitalHook().test_connection()
        assert not ok and "(401)" in message and "API password (Password)" in message
        assert "wrong-pass-456" not in message

        # The account's API endpoint is another host than the connection's: another region.
        other = sandbox.base_url.replace("127.0.0.1", "localhost")
        monkeypatch.setenv("AIRFLOW_CONN_DOTDIGITAL_DEFAULT", dd_conn(sandbox, host=other))
        ok, message = DotdigitalHook().test_connection()
        assert not ok
        assert (
            f"lives at {sandbox.base_url}, not at the connection's Host {other} (another region?)" in message
        )
        assert sandbox._password not in message

    monkeypatch.setenv(
        "AIRFLOW_CONN_DOTDIGITAL_DEFAULT",
        json.dumps(
            {
                "conn_type": "dotdigital",
                "login": "apiuser",
                "password": "api-password-1",
                "extra": {"region": "r9"},
            }
        ),
    )
    ok, message = DotdigitalHook().test_connection()
    assert not ok and "region 'r9' is not one of r1, r2, r3" in message

    monkeypatch.setenv(
        "AIRFLOW_CONN_DOTDIGITAL_DEFAULT",
        json.dumps(
            {
                "conn_type": "dotdigital",
                "host": f"http://127.0.0.1:{free_port}",
                "login": "apiuser",
                "password": "api-password-1",
            }
        ),
    )
    ok, message = DotdigitalHook().test_connection()
    assert not ok and message.startswith(f"Cannot reach http://127.0.0.1:{free_port}")


def test_dotdigital_403_points_at_the_region() -> None:
    hook = DotdigitalHook()
    hint = hook.refused_hint(http.AuthError("refused", 403))
    assert "Region" in hint and "another region's endpoint answers 403" in hint


def test_icontact(monkeypatch, free_port) -> None:
    with IContactSandbox(IContactData.synthetic(contacts=3, messages=1)) as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_ICONTACT_DEFAULT", json.dumps(sandbox.connection()))
        ok, message = IContactHook().test_connection()
        assert ok, message
        assert message.endswith("1 account(s) for this API user.")

        wrong = {**sandbox.connection(), "password": "wrong-app-pass-789"}
        monkeypatch.setenv("AIRFLOW_CONN_ICONTACT_DEFAULT", json.dumps(wrong))
        ok, message = IContactHook().test_connection()
        assert not ok and "(401)" in message and "application is approved" in message
        assert "wrong-app-pass-789" not in message

    monkeypatch.setenv(
        "AIRFLOW_CONN_ICONTACT_DEFAULT", json.dumps({**wrong, "host": f"http://127.0.0.1:{free_port}/icp"})
    )
    ok, message = IContactHook().test_connection()
    assert not ok and message.startswith(f"Cannot reach http://127.0.0.1:{free_port}/icp")
    assert "wrong-app-pass-789" not in message


def test_the_api_servers_test_path_reaches_each_hook(monkeypatch) -> None:
    """What ``POST /api/v2/connections/test`` does: export the form's connection under a transient id,
    then ``Connection.test_connection()`` (which finds the hook class through the provider info)."""
    from airflow.models.connection import Connection

    with (
        LyticsSandbox() as lytics,
        DotdigitalSandbox() as dd,
        IContactSandbox(IContactData.synthetic(2, 1)) as ic,
    ):
        forms = {
            "lytics": {"host": lytics.base_url, "password": "sandbox-token"},
            "dotdigital": {"host": dd.base_url, "login": dd.username, "password": dd._password},
            "icontact": {**ic.connection(), "extra": json.dumps(ic.connection()["extra"])},
        }
        for conn_type, form in forms.items():
            form = {key: value for key, value in form.items() if key != "conn_type"}
            conn = Connection(conn_id=f"transient_{conn_type}", conn_type=conn_type, **form)
            monkeypatch.setenv(f"AIRFLOW_CONN_TRANSIENT_{conn_type.upper()}", conn.as_json())
            ok, message = conn.test_connection()
            assert ok, (conn_type, message)
            conn = Connection(
                conn_id=f"transient_{conn_type}", conn_type=conn_type, **{**form, "password": "bad-secret-x"}
            )
            monkeypatch.setenv(f"AIRFLOW_CONN_TRANSIENT_{conn_type.upper()}", conn.as_json())
            ok, message = conn.test_connection()
            assert not ok and "(401)" in message and "bad-secret-x" not in message, (conn_type, message)
