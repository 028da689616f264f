"""The loopback SFTP server: Airflow SFTPHook round trip, renames, auth and chroot."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import asyncssh
import paramiko
import pytest

from lytics_sandbox.sftp import SFTPSandbox


def _client(host: str, port: int, username: str, **auth: object) -> tuple[paramiko.Transport, Any]:
    transport = paramiko.Transport((host, port))
    transport.connect(username=username, **auth)
    return transport, paramiko.SFTPClient.from_transport(transport)


@pytest.fixture
def sftp(sftp_server):
    transport, client = _client(sftp_server.host, sftp_server.port, "lytics", password="sandbox-pass")
    yield client
    client.close()
    transport.close()


def test_sftphook_store_rename_over_existing_and_retrieve(sftp_server, monkeypatch, tmp_path: Path) -> None:
    from airflow.providers.sftp.hooks.sftp import SFTPHook

    monkeypatch.setenv("AIRFLOW_CONN_SFTP_TEST", sftp_server.conn_json)
    hook = SFTPHook(ssh_conn_id="sftp_test")
    local = tmp_path / "export.csv"
    local.write_text("user.Email\na@example.com\n")
    (sftp_server.root / "upload").mkdir()
    (sftp_server.root / "upload" / "export.csv").write_text("old\n")

    hook.store_file("/upload/export.csv.part", str(local))
    with hook.get_managed_conn() as conn:
        conn.posix_rename("/upload/export.csv.part", "/upload/export.csv")
    assert hook.list_directory("/upload") == ["export.csv"]
    assert (sftp_server.root / "upload" / "export.csv").read_text() == local.read_text()

    back = tmp_path / "back.csv"
    hook.retrieve_file("/upload/export.csv", str(back))
    assert back.read_text() == local.read_text()
    assert hook.path_exists("/upload/export.csv") and not hook.path_exists("/upload/export.csv.part")


def test_connection_uri_form_works(sftp_server, monkeypatch) -> None:
    from airflow.providers.sftp.hooks.sftp import SFTPHook

    monkeypatch.setenv("AIRFLOW_CONN_SFTP_URI", sftp_server.conn_uri)
    hook = SFTPHook(ssh_conn_id="sftp_uri")
    hook.create_directory("/drop/in")
    assert (sftp_server.root / "drop" / "in").is_dir()


def test_plain_rename_keeps_openssh_semantics(sftp, sftp_server) -> None:
    sftp.putfo(io.BytesIO(b"new"), "/a.tmp")
    sftp.putfo(io.BytesIO(b"old"), "/a.csv")
    with pytest.raises(OSError):
        sftp.rename("/a.tmp", "/a.csv")
    sftp.rename("/a.tmp", "/b.csv")
    assert sorted(sftp.listdir("/")) == ["a.csv", "b.csv"]


def test_rename_overwrites_when_asked(tmp_path: Path) -> None:
    with SFTPSandbox(tmp_path / "root", rename_overwrites=True) as server:
        transport, client = _client(server.host, server.port, "lytics", password="sandbox-pass")
        try:
            client.putfo(io.BytesIO(b"new"), "/a.tmp")
            client.putfo(io.BytesIO(b"old"), "/a.csv")
            client.rename("/a.tmp", "/a.csv")
        finally:
            client.close()
            transport.close()
    assert (tmp_path / "root" / "a.csv").read_bytes() == b"new"


@pytest.mark.parametrize("username,password", [("lytics", "wrong"), ("someone", "sandbox-pass")])
def test_password_auth_failure(sftp_server, username: str, password: str) -> None:
    transport = paramiko.Transport((sftp_server.host, sftp_server.port))
    try:
        with pytest.raises(paramiko.AuthenticationException):
            transport.connect(username=username, password=password)
    finally:
        transport.close()


def test_public_key_auth(tmp_path: Path) -> None:
    good = asyncssh.generate_private_key("ssh-ed25519")
    bad = asyncssh.generate_private_key("ssh-ed25519")
    pub = tmp_path / "id.pub"
    good.write_public_key(str(pub))

    def pkey(key: asyncssh.SSHKey) -> paramiko.PKey:
        text = key.export_private_key("openssh").decode()
        return paramiko.Ed25519Key.from_private_key(io.StringIO(text))

    with SFTPSandbox(tmp_path / "root", password=None, authorized_client_keys=pub) as server:
        transport, client = _client(server.host, server.port, "lytics", pkey=pkey(good))
        try:
            assert client.listdir("/") == []
        finally:
            client.close()
            transport.close()
        rejected = paramiko.Transport((server.host, server.port))
        try:
            with pytest.raises(paramiko.AuthenticationException):
                rejected.connect(username="lytics", pkey=pkey(bad))
        finally:
            rejected.close()


def test_chroot_keeps_clients_inside_root(sftp, sftp_server, tmp_path: Path) -> None:
    sftp.putfo(io.BytesIO(b"x"), "/../../escape.txt")
    assert (sftp_server.root / "escape.txt").read_bytes() == b"x"
    assert not (tmp_path / "escape.txt").exists()
    assert sftp.normalize("/..") == "/"


def test_stop_and_restart_is_clean(tmp_path: Path) -> None:
    server = SFTPSandbox(tmp_path / "root", host_key_path=tmp_path / "host_key")
    host, port = server.start()
    fingerprint = server.host_key_fingerprint
    transport, client = _client(host, port, "lytics", password="sandbox-pass")
    server.stop()
    client.close()
    transport.close()
    again = SFTPSandbox(tmp_path / "root", host_key_path=tmp_path / "host_key")
    with again:
        assert again.host_key_fingerprint == fingerprint
