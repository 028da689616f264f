"""Export a Lytics audience (JSON lines or CSV), or a stream's new events, to Azure Blob Storage.

Audiences: the ``deliver`` task of an export DAG, a preset of the file-drop engine
(:class:`~lytics_provider.files.export_operator.ObjectStoreExportOperator`): the audience
snapshot that ``scan`` wrote becomes one file per run, named from the audience slug and the run's
logical date, uploaded with the official ``WasbHook`` as staged blocks committed in one call
(:class:`~lytics_provider.files.transports.azure_blob.AzureBlobTransport`), so the blob never
holds part of a file. A retried task rebuilds the same bytes under the same name.

Events: :class:`LyticsStreamToAzureBlobOperator` writes the events of a stream that no earlier
run delivered (:func:`~lytics_provider.files.export_events.download_new_events`) to one file per
run and commits the stream position in the job state only after the upload.
"""

from __future__ import annotations

from typing import Any

from lytics_provider.files.export_operator import ObjectStoreExportOperator
from lytics_provider.files.transports import Transport
from lytics_provider.files.transports.azure_blob import AzureBlobTransport
from lytics_provider.operators.stream_file import StreamEventsFile
from lytics_provider.operators.stream_position import EVENTS_POSITION_KEY

__all__ = ["EVENTS_POSITION_KEY", "LyticsStreamToAzureBlobOperator", "LyticsToAzureBlobOperator"]


class LyticsToAzureBlobOperator(ObjectStoreExportOperator):
    """Export the scanned audience to ``wasb://{container}/{directory}/{filename}``.

    :param container: the blob container (it must exist).
    :param directory: blob name prefix.
    :param file_format: ``jsonl`` (newline JSON) or ``csv`` (header row).
    :param compression: ``none``, ``gz`` or ``zip``.
    :param filename: name template with ``{slug}``, ``{timestamp}`` (run's logical date, UTC) and ``{ext}``.
    :param pgp_conn_id: ``lytics_pgp`` connection whose ``public_key`` encrypts the file (``.pgp`` appended).
    :param wasb_conn_id: Airflow Azure Blob Storage connection (its ``connection_string`` extra).
    """

    def __init__(self, *, container: str, wasb_conn_id: str = "wasb_default", **kwargs: Any) -> None:
        kwargs.setdefault("compression", "none")
        super().__init__(bucket=container, **kwargs)
        self.wasb_conn_id = wasb_conn_id

    @property
    def container(self) -> str:
        """The blob container (the engine's ``bucket``)."""
        return self.bucket

    def transport(self) -> Transport:
        return self._transport or AzureBlobTransport(self.bucket, self.directory, self.wasb_conn_id)


class LyticsStreamToAzureBlobOperator(StreamEventsFile, LyticsToAzureBlobOperator):
    """Export Events: the events of a Lytics stream that earlier runs did not deliver, as one file.

    The first run exports every event; later runs only the new ones (see
    :class:`~lytics_provider.operators.stream_file.StreamEventsFile`). A run without new events
    uploads nothing. Options as :class:`LyticsToAzureBlobOperator` (``{slug}`` in ``filename`` is
    the stream; ``file_format`` default ``csv``), plus:

    :param stream: the Lytics stream whose events are exported.
    """

    def __init__(
        self,
        *,
        stream: str,
        filename: str = "lytics_{slug}_events_{timestamp}.{ext}",
        file_format: str = "csv",
        **kwargs: Any,
    ) -> None:
        super().__init__(filename=filename, file_format=file_format, **kwargs)
        self.stream = stream
