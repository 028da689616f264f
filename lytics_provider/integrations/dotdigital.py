"""Dotdigital (dotmailer): address-book exports, contact removal, contact and activity imports."""

from lytics_provider.integrations.registration import (
    LYTICS,
    ConnectionType,
    ConnField,
    Integration,
    JobType,
    Transfer,
)

_TYPES = "lytics_provider.jobs.types.dotdigital"

INTEGRATION = Integration(
    name="Dotdigital",
    doc_url="https://developer.dotdigital.com",
    hooks=("lytics_provider.hooks.dotdigital",),
    operators=("lytics_provider.operators.dotdigital",),
    transfers=(Transfer("Dotdigital", LYTICS, "lytics_provider.transfers.dotdigital_to_lytics"),),
    connection_types=(
        ConnectionType(
            conn_type="dotdigital",
            hook_class="lytics_provider.hooks.dotdigital.DotdigitalHook",
            hook_name="Dotdigital",
            hidden_fields=("schema", "port", "extra"),
            relabeling={"login": "API username", "password": "API password", "host": "API endpoint"},
            placeholders={"login": "apiuser-xxxx@apiconnector.com", "host": "https://r1-api.dotdigital.com"},
            fields={
                "region": ConnField(
                    "Region",
                    schema={"type": ["string", "null"], "enum": ["r1", "r2", "r3", None]},
                    description="r1 (Europe), r2 (North America) or r3 (Asia Pacific); ignored when "
                    "an API endpoint is set.",
                ),
                "calls_per_hour": ConnField(
                    "API calls per hour",
                    schema={"type": ["integer", "null"], "default": 2000},
                    description="Client-side budget shared by every task using this connection.",
                ),
            },
            readme="API username and password (HTTP Basic), region `r1`/`r2`/`r3` or an API endpoint, API "
            "calls per hour (default 2,000, shared by every task using the connection)",
        ),
    ),
    job_types=(
        JobType(
            f"{_TYPES}.DotdigitalExportContactsJob",
            "an audience to a Dotdigital address book: adds by bulk import, remove or unsubscribe on exit, "
            "join actions, resubscribe, data fields, Sync Status",
            ("dotdigital_export_contacts.yaml",),
        ),
        JobType(
            f"{_TYPES}.DotdigitalExportMultipleAudiencesJob",
            "several audiences, each to an existing address book",
            ("dotdigital_export_multiple_audiences.yaml",),
        ),
        JobType(
            f"{_TYPES}.DotdigitalExportModifiedContactsJob",
            "keep contacts' data fields up to date",
            ("dotdigital_export_modified_contacts.yaml",),
        ),
        JobType(
            f"{_TYPES}.DotdigitalRemoveContactsJob",
            "remove or unsubscribe members who enter; optional resubscribe on exit",
            ("dotdigital_remove_contacts.yaml",),
        ),
        JobType(
            f"{_TYPES}.DotdigitalImportContactsActivityJob",
            "contacts and sends/opens/clicks into `dotmailer_contacts` / `dotmailer_activity`, incremental",
            ("dotdigital_import_contacts_activity.yaml",),
        ),
    ),
)
