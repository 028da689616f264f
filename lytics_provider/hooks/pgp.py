"""Hook for PGP keys kept in an Airflow connection of type ``lytics_pgp``.

The connection holds an ASCII-armored **public key** (to encrypt exports), an ASCII-armored
**private key** (to decrypt imports) and the private key's **passphrase** (the Password field).
The private key and passphrase are masked in the UI and never logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook

from lytics_provider.connections import ui_field_behaviour
from lytics_provider.pipeline import pgp


class PGPHook(BaseHook):
    """Encrypt and decrypt files with the keys stored in a ``lytics_pgp`` connection."""

    conn_name_attr = "pgp_conn_id"
    default_conn_name = "lytics_pgp_default"
    conn_type = "lytics_pgp"
    hook_name = "PGP keys (Lytics file drops)"

    def __init__(self, pgp_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.pgp_conn_id = pgp_conn_id
        self._extra: dict[str, Any] | None = None
        self._passphrase: str | None = None

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form layout (declared once in ``lytics_provider.connections``)."""
        return ui_field_behaviour(cls.conn_type)

    def _load(self) -> dict[str, Any]:
        if self._extra is None:
            conn = self.get_connection(self.pgp_conn_id)
            self._extra = dict(conn.extra_dejson)
            self._passphrase = conn.password or self._extra.get("passphrase") or None
        return self._extra

    def _key(self, name: str, use: str) -> str:
        value = (self._load().get(name) or "").strip()
        if not value:
            raise ValueError(
                f"Connection {self.pgp_conn_id!r} has no {name.replace('_', ' ')}: paste the ASCII-armored "
                f"key (-----BEGIN PGP ...) into its {name!r} field to {use}."
            )
        return pgp.normalize_armor(value)

    def get_public_key(self) -> str:
        """The armored public key used to encrypt exports."""
        return self._key("public_key", "encrypt exports")

    def get_private_key(self) -> str:
        """The armored private key used to decrypt imports."""
        return self._key("private_key", "decrypt imports")

    def decryption_keys(self) -> tuple[str | None, str | None]:
        """``(private key or None, passphrase)``, for imports that decrypt only ``.pgp`` files."""
        extra = self._load()
        key = self.get_private_key() if (extra.get("private_key") or "").strip() else None
        return key, self._passphrase

    def encrypt_file(self, source: Path, target: Path) -> None:
        """Encrypt ``source`` into ``target`` for the connection's public key."""
        pgp.encrypt_file(self.get_public_key(), source, target)

    def decrypt_file(self, source: Path, target: Path) -> None:
        """Decrypt ``source`` into ``target`` with the connection's private key and passphrase."""
        key = self.get_private_key()
        pgp.decrypt_file(key, self._passphrase, source, target)

    def test_connection(self) -> tuple[bool, str]:
        """Check that the stored keys import (the UI's Test button)."""
        try:
            extra = self._load()
            found = []
            with pgp.Keyring() as keyring:
                for name in ("public_key", "private_key"):
                    if extra.get(name):
                        found.append(
                            f"{name}: {len(keyring.import_key(self._key(name, 'use it'), name))} keys"
                        )
            if not found:
                return False, "no public_key or private_key set"
            return True, "; ".join(found)
        except Exception as exc:
            return False, str(exc)
