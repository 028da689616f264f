"""Connection types of the provider, declared once.

Airflow reads these through ``get_provider_info`` (``conn-fields`` and ``ui-field-behaviour``)
without importing any hook; each hook's ``get_ui_field_behaviour`` returns the same data.
Secret fields carry ``format: password`` so the UI masks them.
"""

from __future__ import annotations

from typing import Any

_STR = {"type": ["string", "null"]}
_SECRET = {"type": ["string", "null"], "format": "password"}

CONNECTION_TYPES: list[dict[str, Any]] = [
    {
        "hook-class-name": "lytics_provider.hooks.lytics.LyticsHook",
        "hook-name": "Lytics",
        "connection-type": "lytics",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "login", "port", "extra"],
            "relabeling": {"host": "API URL", "password": "API Token"},
            "placeholders": {"host": "https://api.lytics.io", "password": "Lytics API token"},
        },
        "conn-fields": {
            "account_id": {
                "label": "Account ID",
                "description": "Selects the account for multi-account tokens (optional).",
                "schema": _STR,
            },
            "bulk_url": {
                "label": "Bulk upload URL",
                "description": "Host for /collect/bulk uploads; default https://bulk.lytics.io.",
                "schema": _STR,
            },
            "max_attempts": {
                "label": "Attempts per API call",
                "description": "How often one call is tried on 429, 5xx or a dropped connection (default 8).",
                "schema": {"type": ["integer", "null"], "default": 8, "minimum": 1},
            },
        },
    },
    {
        "hook-class-name": "lytics_provider.hooks.dotdigital.DotdigitalHook",
        "hook-name": "Dotdigital",
        "connection-type": "dotdigital",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port", "extra"],
            "relabeling": {"login": "API username", "password": "API password", "host": "API endpoint"},
            "placeholders": {
                "login": "apiuser-xxxx@apiconnector.com",
                "host": "https://r1-api.dotdigital.com",
            },
        },
        "conn-fields": {
            "region": {
                "label": "Region",
                "description": "r1 (Europe), r2 (North America) or r3 (Asia Pacific); ignored when "
                "an API endpoint is set.",
                "schema": {"type": ["string", "null"], "enum": ["r1", "r2", "r3", None]},
            },
            "calls_per_hour": {
                "label": "API calls per hour",
                "description": "Client-side budget shared by every task using this connection.",
                "schema": {"type": ["integer", "null"], "default": 2000},
            },
        },
    },
    {
        "hook-class-name": "lytics_provider.hooks.icontact.IContactHook",
        "hook-name": "iContact",
        "connection-type": "icontact",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port", "extra"],
            "relabeling": {"login": "API username", "password": "API password", "host": "API URL"},
            "placeholders": {"host": "https://app.icontact.com/icp"},
        },
        "conn-fields": {
            "app_id": {"label": "Application ID (API-AppId)", "schema": _SECRET},
            "account_id": {"label": "Account ID", "schema": _STR},
            "client_folder_id": {"label": "Client folder ID", "schema": _STR},
            "api_version": {"label": "API version", "schema": {"type": ["string", "null"], "default": "2.2"}},
        },
    },
    {
        "hook-class-name": "lytics_provider.hooks.pgp.PGPHook",
        "hook-name": "PGP keys (Lytics file drops)",
        "connection-type": "lytics_pgp",
        "ui-field-behaviour": {
            "hidden-fields": ["host", "schema", "login", "port", "extra"],
            "relabeling": {"password": "Passphrase"},
            "placeholders": {"password": "passphrase of the private key (imports only)"},
        },
        "conn-fields": {
            "public_key": {
                "label": "Public key",
                "description": "ASCII-armored PGP public key (-----BEGIN PGP PUBLIC KEY BLOCK-----) that "
                "exported files are encrypted for.",
                "schema": _SECRET,
            },
            "private_key": {
                "label": "Private key",
                "description": "ASCII-armored PGP private key (-----BEGIN PGP PRIVATE KEY BLOCK-----) that "
                "decrypts imported files; its passphrase goes in the Passphrase field.",
                "schema": _SECRET,
            },
        },
    },
]


def ui_field_behaviour(conn_type: str) -> dict[str, Any]:
    """Return the hook-style (snake_case) UI field behaviour of ``conn_type``."""
    for spec in CONNECTION_TYPES:
        if spec["connection-type"] == conn_type:
            behaviour = spec["ui-field-behaviour"]
            return {
                "hidden_fields": list(behaviour["hidden-fields"]),
                "relabeling": dict(behaviour["relabeling"]),
                "placeholders": dict(behaviour["placeholders"]),
            }
    raise KeyError(conn_type)
