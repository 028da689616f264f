"""Lytics: the API hook, the audience scan and commit operators, the ``lytics`` connection."""

from lytics_provider.integrations.registration import LYTICS, ConnectionType, ConnField, Integration

INTEGRATION = Integration(
    name=LYTICS,
    doc_url="https://docs.lytics.com",
    hooks=("lytics_provider.hooks.lytics",),
    operators=("lytics_provider.operators.lytics",),
    connection_types=(
        ConnectionType(
            conn_type="lytics",
            hook_class="lytics_provider.hooks.lytics.LyticsHook",
            hook_name="Lytics",
            hidden_fields=("schema", "login", "port", "extra"),
            relabeling={"host": "API URL", "password": "API Token"},
            placeholders={"host": "https://api.lytics.io", "password": "Lytics API token"},
            fields={
                "account_id": ConnField(
                    "Account ID", description="Selects the account for multi-account tokens (optional)."
                ),
                "bulk_url": ConnField(
                    "Bulk upload URL",
                    description="Host for /collect/bulk uploads; default https://bulk.lytics.io.",
                ),
                "max_attempts": ConnField(
                    "Attempts per API call",
                    schema={"type": ["integer", "null"], "default": 8, "minimum": 1},
                    description="How often one call is tried on 429, 5xx or a dropped connection "
                    "(default 8).",
                ),
            },
            readme="API URL (default `https://api.lytics.io`), API Token (sent as the raw `Authorization` "
            "header), Account ID, Bulk upload URL, attempts per call",
        ),
    ),
)
