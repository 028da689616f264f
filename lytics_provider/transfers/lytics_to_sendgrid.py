"""Export a scanned Lytics audience to SendGrid ("Export Audiences"): a segment per audience over
the custom field ``lytics_segments``.

The ``deliver`` task of the export DAG (``scan`` → ``deliver`` → ``report``). Before sending it
makes sure the custom field ``lytics_segments`` (Text) exists and that the audience has its
segment, named after the audience, defined as "``lytics_segments`` contains the audience id"
(on the selected list, else on All Contacts). Members are upserted as contacts by the adapter,
:class:`~lytics_provider.hooks.sendgrid.SendGridSegmentDestination`; contacts are never deleted
or taken off a list. A dry run creates nothing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

from lytics_provider.hooks.lytics import LyticsHook
from lytics_provider.hooks.sendgrid import (
    MAX_CONTACTS,
    SEGMENTS_FIELD,
    SendGridHook,
    SendGridSegmentDestination,
    segment_query,
)
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.sync.operator import AudienceSyncOperator, SyncRunInputs

_FIELD_NAME = re.compile(rf"^{SEGMENTS_FIELD}(_\d+)?$")


def _field_order(name: str) -> int:
    return int(name.rpartition("_")[2]) if name != SEGMENTS_FIELD else 0


class LyticsToSendGridOperator(AudienceSyncOperator):
    """Keep an audience's SendGrid segment up to date through the contacts' ``lytics_segments``.

    :param sendgrid_conn_id: the ``sendgrid`` connection.
    :param sendgrid_list: a SendGrid list (id or name) to add the contacts to and to put the
        segment on; default none (the segment is on All Contacts).
    :param segment_name: the segment's name (default: the Lytics audience's name).
    :param email_field: the Lytics field with the email.
    :param segments_field: the Lytics field with the member's audiences (slugs or ids).
    :param export_fields: Lytics field -> SendGrid field (reserved or custom, string / int / date).
    :param max_field_chars: longest value of one ``lytics_segments`` field before the overflow
        field ``lytics_segments_1`` (then ``_2``, ...) is used.
    :param batch_size: contacts per ``PUT /v3/marketing/contacts`` (at most 30,000; also 6 MB).
    :param poll_interval: seconds between polls of an upsert job.
    :param job_timeout: seconds to wait for one upsert job (a retry reattaches to it).
    :param lytics_conn_id: the Lytics connection (audience slugs to ids).
    :param kwargs: :class:`~lytics_provider.sync.operator.AudienceSyncOperator`'s arguments.
    """

    batch_limit = MAX_CONTACTS
    template_fields: Sequence[str] = ("sendgrid_list", "segment_name")
    sleep = staticmethod(time.sleep)

    def __init__(
        self,
        *,
        sendgrid_conn_id: str = SendGridHook.default_conn_name,
        sendgrid_list: str | None = None,
        segment_name: str | None = None,
        email_field: str = "email",
        segments_field: str = "segments",
        export_fields: dict[str, str] | None = None,
        max_field_chars: int = 1000,
        batch_size: int = MAX_CONTACTS,
        poll_interval: float = 5.0,
        job_timeout: float = 3600.0,
        lytics_conn_id: str = LyticsHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        self.check_batch_size(batch_size)

    def make_destination(self, inputs: SyncRunInputs) -> SendGridSegmentDestination:
        hook = SendGridHook(self.sendgrid_conn_id)
        audience_id = str(inputs.audience.get("id") or "")
        name = self.segment_name or str(inputs.audience.get("name") or inputs.audience.get("slug") or "")
        if not audience_id or not name:
            raise ValueError("the scan named no audience id; run the scan task first")
        lytics = LyticsHook(self.lytics_conn_id)
        slug_ids = {
            str(s.get("slug_name")): str(s["id"])
            for s in lytics.list_segments(sizes=False)
            if s.get("slug_name")
        }
        list_ids = [str(hook.resolve_list(self.sendgrid_list)["id"])] if self.sendgrid_list else []
        custom_ids = hook.custom_fields()
        fields = {n: i for n, i in custom_ids.items() if _FIELD_NAME.match(n)}
        if SEGMENTS_FIELD not in fields:
            fields[SEGMENTS_FIELD] = (
                "(created on delivery)" if inputs.dry_run else hook.create_field(SEGMENTS_FIELD)
            )
        names = sorted(fields, key=_field_order)
        segment = next((s for s in hook.segments() if s.get("name") == name), None)
        query = segment_query(names, audience_id)
        if inputs.dry_run:
            pass
        elif segment is None:
            segment = hook.create_segment(name, query, list_ids)
            self.log.info("Created SendGrid segment %r (%s): %s", name, segment.get("id"), query)
        elif segment.get("query_dsl") != query:
            hook.update_segment(str(segment["id"]), query)
        segment_id = str((segment or {}).get("id") or "")

        def add_field(field_name: str) -> str:
            field_id = hook.create_field(field_name)
            names.append(field_name)
            if segment_id:
                hook.update_segment(segment_id, segment_query(names, audience_id))
            self.log.info("Created overflow field %s and widened segment %r", field_name, name)
            return field_id

        self.log.info(
            "SendGrid segment %r for audience %s over %s; %s",
            name,
            audience_id,
            names,
            "members who entered or exited since the last run" if inputs.previous else "every member",
        )
        return SendGridSegmentDestination(
            hook,
            audience_id,
            fields,
            slug_ids,
            add_field,
            list_ids=list_ids,
            custom_ids=custom_ids,
            email_field=self.email_field,
            segments_field=self.segments_field,
            export_fields=self.export_fields,
            max_field_chars=self.max_field_chars,
            batch_size=self.batch_size,
            poll_interval=self.poll_interval,
            timeout=self.job_timeout,
            sleep=self.sleep,
        )
