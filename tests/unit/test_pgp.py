"""PGP through the gpg binary: round trips with a committed test key pair, errors without secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lytics_provider.hooks.pgp import PGPHook
from lytics_provider.pipeline import pgp

DATA = Path(__file__).resolve().parents[1] / "data"
PUBLIC = (DATA / "pgp_test_public.asc").read_text()
PRIVATE = (DATA / "pgp_test_private.asc").read_text()
PASSPHRASE = "correct horse battery"


@pytest.fixture
def pgp_conn(monkeypatch: pytest.MonkeyPatch) -> str:
    extra = {"public_key": PUBLIC, "private_key": PRIVATE.replace("\n", "")}
    monkeypatch.setenv(
        "AIRFLOW_CONN_TEST_PGP",
        json.dumps({"conn_type": "lytics_pgp", "password": PASSPHRASE, "extra": extra}),
    )
    return "test_pgp"


def test_encrypt_then_decrypt_restores_the_bytes(tmp_path: Path) -> None:
    source = tmp_path / "rows.csv"
    source.write_bytes(b"email,name\r\n" + b"a@example.com,A\r\n" * 5000)
    encrypted = tmp_path / pgp.encrypted_name("rows.csv")
    pgp.encrypt_file(PUBLIC, source, encrypted)
    assert encrypted.name == "rows.csv.pgp"
    assert b"a@example.com" not in encrypted.read_bytes()
    restored = tmp_path / "restored.csv"
    pgp.decrypt_file(PRIVATE, PASSPHRASE, encrypted, restored)
    assert restored.read_bytes() == source.read_bytes()


def test_wrong_passphrase_fails_without_echoing_it(tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("secret rows")
    pgp.encrypt_file(PUBLIC, source, tmp_path / "a.txt.pgp")
    wrong = "not-the-passphrase-xyz"
    with pytest.raises(pgp.PGPError, match=r"decrypting a\.txt\.pgp failed") as caught:
        pgp.decrypt_file(PRIVATE, wrong, tmp_path / "a.txt.pgp", tmp_path / "out.txt")
    assert wrong not in str(caught.value)
    assert "BEGIN PGP" not in str(caught.value)
    assert not (tmp_path / "out.txt").exists()


def test_a_key_that_is_not_armored_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(pgp.PGPError, match="not an ASCII-armored PGP key"):
        pgp.encrypt_file("ssh-ed25519 AAAA...", tmp_path / "x", tmp_path / "y")


def test_keyrings_are_removed_after_use(tmp_path: Path) -> None:
    with pgp.Keyring() as keyring:
        fingerprints = keyring.import_key(PUBLIC)
        home = keyring.home
        assert home.is_dir() and len(fingerprints) == 2
    assert not home.exists()


def test_armor_lost_line_breaks_are_repaired() -> None:
    for text in (PUBLIC, PRIVATE):
        assert pgp.normalize_armor(text.replace("\n", "")) == text
        assert pgp.normalize_armor(text.replace("\n", "\\n")) == text
        assert pgp.normalize_armor(text.replace("\n", "\r\n")) == text


def test_pgp_suffixes() -> None:
    assert pgp.strip_pgp_suffix("contacts_1.csv.gz.pgp") == ("contacts_1.csv.gz", True)
    assert pgp.strip_pgp_suffix("contacts_1.CSV.GPG") == ("contacts_1.CSV", True)
    assert pgp.strip_pgp_suffix("contacts_1.csv") == ("contacts_1.csv", False)


def test_hook_reads_keys_from_the_connection(pgp_conn: str, tmp_path: Path) -> None:
    hook = PGPHook(pgp_conn)
    source = tmp_path / "x.csv"
    source.write_text("a,b\n1,2\n")
    hook.encrypt_file(source, tmp_path / "x.csv.pgp")
    hook.decrypt_file(tmp_path / "x.csv.pgp", tmp_path / "back.csv")
    assert (tmp_path / "back.csv").read_text() == "a,b\n1,2\n"
    ok, message = hook.test_connection()
    assert ok, message


def test_hook_names_the_missing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_EMPTY_PGP", json.dumps({"conn_type": "lytics_pgp", "extra": {}}))
    with pytest.raises(ValueError, match="'empty_pgp' has no public key"):
        PGPHook("empty_pgp").get_public_key()
