"""Reading Dotdigital's ``report-faults`` file: the documented shape and reason vocabulary."""

from __future__ import annotations

import pytest

from lytics_provider.pipeline.dotdigital_faults import (
    DOCUMENTED_REASONS,
    FaultsFileError,
    classify,
    faults_by_email,
    iter_faults,
)

# The reason list of Dotdigital's own connector (see the docstrings below for where it is written).
CONNECTOR_REASONS = (
    "Globally Suppressed",
    "Blocked",
    "Unsubscribed",
    "Hard Bounced",
    "Isp Complaints",
    "Domain Suppressed",
    "Failures",
    "Invalid Entries",
    "Mail Blocked",
    "Suppressed by you",
)
# ``ApiContactStatuses`` of the v2 OpenAPI (api-evangelist/dotdigital,
# openapi/_original/dotdigital-v2-api-swagger.json).
CONTACT_STATUSES = {
    "Subscribed", "Unsubscribed", "SoftBounced", "HardBounced", "IspComplained", "MailBlocked",
    "PendingOptIn", "DirectComplaint", "Deleted", "SharedSuppression", "Suppressed", "NotAllowed",
    "DomainSuppression", "NoMxRecord",
}  # fmt: skip


def test_reason_then_email_rows_after_a_header() -> None:
    """Shape: one header row, then ``reason,email`` rows; a UTF-8 byte-order mark may lead.

    Contract: repository dotmailer/dotmailer-magento2-extension,
    Model/Sync/Importer/ReportHandler/V2ImporterReportHandler.php (strips the BOM, skips the
    header, splits each row into reason and email); the v2 OpenAPI (api-evangelist/dotdigital,
    openapi/_original/dotdigital-v2-api-swagger.json) types the answer as a UTF-8 CSV file.
    """
    text = "\ufeffReason,Email\r\nHard Bounced,One@Example.com\r\n\r\nUnsubscribed,two@example.com\r\n"
    faults = list(iter_faults(text))
    assert [(f.email, f.reason, f.meaning.status) for f in faults] == [
        ("one@example.com", "Hard Bounced", "HardBounced"),
        ("two@example.com", "Unsubscribed", "Unsubscribed"),
    ]


def test_every_connector_reason_maps_to_a_contact_status_or_a_reject() -> None:
    """Every reason of the connector's list is known and maps to an ``ApiContactStatuses`` value
    or ``Rejected``; only unsubscribes and the account's own suppressions are worth resubscribing.

    Contract: dotmailer/dotmailer-magento2-extension,
    Model/Sync/Importer/ReportHandler/V2ImporterReportHandler.php (the reason list);
    api-evangelist/dotdigital, openapi/_original/dotdigital-v2-api-swagger.json (ApiContactStatuses).
    """
    assert set(CONNECTOR_REASONS) <= set(DOCUMENTED_REASONS)
    for reason in CONNECTOR_REASONS:
        name, meaning = classify(reason)
        assert name == reason
        assert meaning.status in CONTACT_STATUSES | {"Rejected"}, reason
    resubscribable = {r for r in CONNECTOR_REASONS if classify(r)[1].resubscribable}
    assert resubscribable == {"Unsubscribed", "Suppressed by you"}
    assert classify("Failures")[1].status == "Rejected"
    assert classify("Invalid Entries")[1].status == "Rejected"


def test_report_counter_reasons_and_status_spellings_are_read() -> None:
    """Reasons written like the import report's counters (``duplicateEmails``, ``softBounced``,
    ``pendingDoubleOptin``) and ``ApiContactStatuses`` spellings are read; case and spaces do not
    matter. A duplicate note never outranks the email's own reason.

    Contract: api-evangelist/dotdigital, openapi/_original/dotdigital-v2-api-swagger.json
    (ApiContactImportReport, ApiContactStatuses).
    """
    assert classify("duplicate emails")[1].duplicate
    assert classify("SoftBounced")[1].status == "SoftBounced"
    assert classify("Pending Double Optin")[1].status == "PendingOptIn"
    assert classify("HARDBOUNCED")[0] == "Hard Bounced"
    assert classify("IspComplained")[0] == "Isp Complaints"
    text = (
        "Reason,Email\nDuplicate Emails,a@example.com\nUnsubscribed,a@example.com\nFailures,b@example.com\n"
    )
    found = faults_by_email(text)
    assert found["a@example.com"].reason == "Unsubscribed"
    assert found["b@example.com"].meaning.status == "Rejected"


def test_unknown_reason_is_an_error_naming_it() -> None:
    """A reason outside the documented vocabulary is an error that names it (never a success).

    Contract: dotmailer/dotmailer-magento2-extension,
    Model/Sync/Importer/ReportHandler/V2ImporterReportHandler.php.
    """
    with pytest.raises(FaultsFileError, match=r"line 3: unknown fault reason 'Quarantined'"):
        list(iter_faults("Reason,Email\nBlocked,a@example.com\nQuarantined,b@example.com\n"))


def test_unknown_header_is_an_error_naming_it() -> None:
    """A header without a Reason and an Email column is an error naming the header.

    Contract: dotmailer/dotmailer-magento2-extension,
    Model/Sync/Importer/ReportHandler/V2ImporterReportHandler.php (a header row precedes the rows).
    """
    with pytest.raises(FaultsFileError, match=r"unrecognised header \['Fault', 'Address'\]"):
        list(iter_faults("Fault,Address\nBlocked,a@example.com\n"))
    with pytest.raises(FaultsFileError, match="line 2 has no email"):
        list(iter_faults("Reason,Email\nBlocked,\n"))


def test_columns_are_found_by_name_in_any_order() -> None:
    """Header names are matched without case or spaces, so ``EMAIL ADDRESS,reason`` works too.

    Contract: dotmailer/dotmailer-magento2-extension,
    Model/Sync/Importer/ReportHandler/V2ImporterReportHandler.php.
    """
    found = faults_by_email("EMAIL ADDRESS,reason\nx@example.com,Mail Blocked\n")
    assert found["x@example.com"].meaning.status == "MailBlocked"
    assert faults_by_email("") == {}
