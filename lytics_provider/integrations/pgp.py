"""PGP keys for encrypted file drops and imports: the ``lytics_pgp`` connection."""

from lytics_provider.integrations.registration import SECRET, ConnectionType, ConnField, Integration

INTEGRATION = Integration(
    name="PGP",
    doc_url="https://www.gnupg.org",
    tags=("software",),
    hooks=("lytics_provider.hooks.pgp",),
    connection_types=(
        ConnectionType(
            conn_type="lytics_pgp",
            hook_class="lytics_provider.hooks.pgp.PGPHook",
            hook_name="PGP keys (Lytics file drops)",
            hidden_fields=("host", "schema", "login", "port", "extra"),
            relabeling={"password": "Passphrase"},
            placeholders={"password": "passphrase of the private key (imports only)"},
            fields={
                "public_key": ConnField(
                    "Public key",
                    schema=SECRET,
                    description="ASCII-armored PGP public key (-----BEGIN PGP PUBLIC KEY BLOCK-----) that "
                    "exported files are encrypted for.",
                ),
                "private_key": ConnField(
                    "Private key",
                    schema=SECRET,
                    description="ASCII-armored PGP private key (-----BEGIN PGP PRIVATE KEY BLOCK-----) that "
                    "decrypts imported files; its passphrase goes in the Passphrase field.",
                ),
            },
            readme="PGP public key (exports), private key and passphrase (imports)",
        ),
    ),
)
