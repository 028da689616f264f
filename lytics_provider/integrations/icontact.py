"""iContact: audience exports to a list, contact and activity imports."""

from lytics_provider.integrations.registration import (
    LYTICS,
    SECRET,
    ConnectionType,
    ConnField,
    Integration,
    JobType,
    Transfer,
)

_TYPES = "lytics_provider.jobs.types.icontact"

INTEGRATION = Integration(
    name="iContact",
    doc_url="https://www.icontact.com",
    hooks=("lytics_provider.hooks.icontact",),
    transfers=(
        Transfer("iContact", LYTICS, "lytics_provider.transfers.icontact_to_lytics"),
        Transfer(LYTICS, "iContact", "lytics_provider.transfers.lytics_to_icontact"),
    ),
    connection_types=(
        ConnectionType(
            conn_type="icontact",
            hook_class="lytics_provider.hooks.icontact.IContactHook",
            hook_name="iContact",
            hidden_fields=("schema", "port", "extra"),
            relabeling={"login": "API username", "password": "API password", "host": "API URL"},
            placeholders={"host": "https://app.icontact.com/icp"},
            fields={
                "app_id": ConnField("Application ID (API-AppId)", schema=SECRET),
                "account_id": ConnField("Account ID"),
                "client_folder_id": ConnField("Client folder ID"),
                "api_version": ConnField(
                    "API version", schema={"type": ["string", "null"], "default": "2.2"}
                ),
            },
            readme="API username, API password, Application ID (`API-AppId`), account and client folder",
        ),
    ),
    job_types=(
        JobType(
            f"{_TYPES}.IContactImportJob",
            "contacts into `icontact_users`, bounces/opens/clicks/unsubscribes into `icontact_activity`, "
            "with the seed's mappings and profile aggregations; Filter by AID",
            ("icontact_import.yaml",),
        ),
        JobType(
            f"{_TYPES}.IContactExportJob",
            "subscribe an audience to an iContact list, in batches",
            ("icontact_export.yaml",),
        ),
    ),
)
