"""Which object-store files an import reads, in what order: continuous sequence namings and the
store chosen by name."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lytics_provider.files.listing import (
    PREFIX_TIMESTAMP_JSON,
    TIMESTAMP_CSV,
    AzureBlobStore,
    GCSStore,
    ObjectInfo,
    S3Store,
    object_store,
    select_objects,
)

WHEN = datetime(2026, 11, 23, tzinfo=UTC)


def _objects(*keys: str) -> list[ObjectInfo]:
    return [ObjectInfo(key, 10, WHEN) for key in keys]


def test_timestamp_csv_sequence_orders_by_the_name_and_skips_other_names() -> None:
    listing = _objects("in/1764288000.csv", "in/999999999.csv.gz", "in/latest.csv", "in/1764201600.csv.pgp")
    ordered, skipped = select_objects(listing, prefix="in/", continuous=True, naming=TIMESTAMP_CSV)
    # digit stamps compare as numbers: a 9-digit stamp is older than a 10-digit one
    assert [o.key for o in ordered] == ["in/999999999.csv.gz", "in/1764201600.csv.pgp", "in/1764288000.csv"]
    assert skipped == ["in/latest.csv: not named timestamp.csv (continuous import)"]
    # after a file that has since been removed: only later stamps
    after, _ = select_objects(
        listing, prefix="in/", continuous=True, naming=TIMESTAMP_CSV, last_file={"key": "in/1764250000.csv"}
    )
    assert [o.key for o in after] == ["in/1764288000.csv"]


def test_prefix_timestamp_json_stays_the_default_sequence() -> None:
    assert PREFIX_TIMESTAMP_JSON.timestamp("feed/orders_20260101000000.json.pgp") == "20260101000000"
    assert PREFIX_TIMESTAMP_JSON.timestamp("feed/1764288000.csv") is None
    assert TIMESTAMP_CSV.timestamp("feed/orders_20260101000000.json") is None
    _, skipped = select_objects(_objects("orders-latest.json"), continuous=True)
    assert skipped == ["orders-latest.json: not named prefix_timestamp.json (continuous import)"]


def test_object_store_by_name() -> None:
    assert isinstance(object_store("s3", "b"), S3Store)
    assert isinstance(object_store("gcs", "b"), GCSStore)
    azure = object_store("azure_blob", "c", wasb_conn_id="braze_azure")
    assert isinstance(azure, AzureBlobStore) and (azure.container, azure.wasb_conn_id) == ("c", "braze_azure")
    with pytest.raises(ValueError, match="storage 'ftp' is not supported; use one of s3, gcs, azure_blob"):
        object_store("ftp", "b")  # type: ignore[arg-type]


def test_the_expected_next_file_of_a_sequence_names_its_timestamp() -> None:
    from lytics_provider.files.listing import PREFIX_TIMESTAMP_JSON, TIMESTAMP_CSV
    from lytics_provider.files.sequence_stop import expected_next

    assert (
        expected_next("feed/orders_20260101000000.json.gz", PREFIX_TIMESTAMP_JSON)
        == "feed/orders_<timestamp after 20260101000000>.json.gz"
    )
    assert expected_next("1764201600.csv", TIMESTAMP_CSV) == "<timestamp after 1764201600>.csv"
