"""A partner's file drop in a few lines: layout, name, compression and trigger.

A preset holds everything that makes a partner's file its own; the job supplies the destination
(a transport) and the values its name needs (e.g. the partner's site id)::

    PARTNER = FileDropPreset(
        layout=FileLayout(("email", "attrs"), delimiter="\\t", header_row=False,
                          cells=KeyValueCells("email", ("city", "segments"))),
        name=NameTemplate("{partner}_{site_id}_{date}"),
        compression="gz",
        trigger=TriggerFile(".trigger"),
    )
    deliver = PARTNER.operator(task_id="deliver", job_id=job_id,
                               transport=SftpTransport("partner_sftp", "incoming"),
                               name_values={"partner": "Acme", "site_id": "123"})
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lytics_provider.files.export_layout import FileLayout
from lytics_provider.files.export_naming import NameTemplate
from lytics_provider.files.export_trigger import TriggerFile
from lytics_provider.pipeline.compression import COMPRESSIONS

if TYPE_CHECKING:
    from lytics_provider.files.export_operator import FileDropExportOperator
    from lytics_provider.files.transports import Transport


@dataclass(frozen=True)
class FileDropPreset:
    """The fixed parts of one file drop.

    :param layout: columns, header and dialect (None: decided by the operator at run time).
    :param name: the file name template (None: the operator's default).
    :param compression: ``none``, ``gz`` (``.gz`` appended) or ``zip`` (``.zip`` holding the file).
    :param trigger: a trigger/manifest file uploaded after the data file.
    """

    layout: FileLayout | None = None
    name: NameTemplate | None = None
    compression: str = "none"
    trigger: TriggerFile | None = None

    def __post_init__(self) -> None:
        if self.compression not in COMPRESSIONS:
            raise ValueError(
                f"compression must be one of {', '.join(COMPRESSIONS)}, not {self.compression!r}"
            )

    def operator(
        self,
        *,
        transport: Transport,
        name_values: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> FileDropExportOperator:
        """The ``deliver`` task of this preset (``kwargs``: ``task_id``, ``job_id``, ``pgp_conn_id``...)."""
        from lytics_provider.files.export_operator import FileDropExportOperator

        preset = self
        if name_values and self.name is not None:
            name = dataclasses.replace(self.name, values={**self.name.values, **name_values})
            preset = dataclasses.replace(self, name=name)
        return FileDropExportOperator(preset=preset, transport=transport, **kwargs)
