"""Export a scanned Lytics audience to SendGrid ("Export Audiences"): a segment per audience over
the custom field ``lytics_segments``.

The ``deliver`` task of the export DAG (``scan`` → ``deliver`` → ``report``). Before sending it
makes sure the custom field ``lytics_segments`` (Text) exists and that the audience has its
segment, named after the audience, defined as "``lytics_segments`` contains the audience id"
(on the selected list, else on All Contacts). Members are upserted as contacts by the adapter,
:class:`~lytics_provider.hooks.sendgrid.SendGridSegmentDestination`; contacts are never deleted
or taken off a list. A dry run creates nothing. The field and segment ids found by a full run
are kept in the job's state and reused by the runs that send changes (:class:`SendGridSetup`).
"""

from __future__ import annotations

import logging
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
from lytics_provider.pipeline.http import PermanentServiceError
from lytics_provider.sync.kept_setup import KeptSetup
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
        setup = SendGridSetup(hook, self.job_id, name, audience_id, list_ids, inputs.dry_run, self.log)
        setup.find(reuse=inputs.previous is not None)
        self.log.info(
            "SendGrid segment %r for audience %s over %s; %s",
            name,
            audience_id,
            setup.names,
            "members who entered or exited since the last run" if inputs.previous else "every member",
        )
        return SendGridSegmentDestination(
            hook,
            audience_id,
            setup.fields(),
            slug_ids,
            setup.add_field,
            list_ids=list_ids,
            custom_ids=setup.custom_ids,
            refresh=setup.refresh,
            email_field=self.email_field,
            segments_field=self.segments_field,
            export_fields=self.export_fields,
            max_field_chars=self.max_field_chars,
            batch_size=self.batch_size,
            poll_interval=self.poll_interval,
            timeout=self.job_timeout,
            sleep=self.sleep,
        )


class SendGridSetup:
    """The custom field ``lytics_segments`` (and its overflow fields) and the audience's segment.

    Looked up (and created when missing) by a run that sends every member and kept in the job's
    state (:class:`~lytics_provider.sync.kept_setup.KeptSetup`); the runs that send changes reuse
    the kept ids. A field
    SendGrid no longer has (the upsert answers that it does not exist) or a segment it answers 404
    for is looked up again. A dry run creates and keeps nothing.

    :param hook: the SendGrid hook.
    :param job_id: the job whose state keeps the ids.
    :param name: the segment's name.
    :param audience_id: the Lytics audience's id (what the segment matches).
    :param list_ids: the list the segment is on (none: All Contacts).
    :param dry_run: create nothing.
    :param log: where set-up changes are logged.
    """

    def __init__(
        self,
        hook: SendGridHook,
        job_id: str,
        name: str,
        audience_id: str,
        list_ids: list[str],
        dry_run: bool,
        log: logging.Logger,
    ) -> None:
        self.hook = hook
        self.kept = KeptSetup(job_id, f"sendgrid:{hook.conn_id}")
        self.key = f"segment:{name}:{audience_id}:{','.join(list_ids)}"
        self.name = name
        self.audience_id = audience_id
        self.list_ids = list_ids
        self.dry_run = dry_run
        self.log = log
        self.custom_ids: dict[str, str] = {}
        self.names: list[str] = []
        self.segment_id = ""

    def fields(self) -> dict[str, str]:
        """``lytics_segments`` field name -> id."""
        return {n: self.custom_ids[n] for n in self.names}

    def find(self, reuse: bool = True) -> None:
        """The kept ids, else look them up (creating what is missing) and keep them.

        :param reuse: use kept ids (a run that sends every member looks them up again, so a segment
            deleted or edited in SendGrid is put back).
        """
        kept = self.kept.get(self.key) if reuse and not self.dry_run else None
        if kept is None:
            self.look_up()
        else:
            self.custom_ids = dict(kept["custom_ids"])
            self.segment_id = str(kept["segment_id"])
            self.names = sorted((n for n in self.custom_ids if _FIELD_NAME.match(n)), key=_field_order)

    def look_up(self) -> None:
        """Read the custom fields and segments; create the field and segment when missing; keep them."""
        self.custom_ids = self.hook.custom_fields()
        if SEGMENTS_FIELD not in self.custom_ids:
            self.custom_ids[SEGMENTS_FIELD] = (
                "(created on delivery)" if self.dry_run else self.hook.create_field(SEGMENTS_FIELD)
            )
        self.names = sorted((n for n in self.custom_ids if _FIELD_NAME.match(n)), key=_field_order)
        segment = next((s for s in self.hook.segments() if s.get("name") == self.name), None)
        query = segment_query(self.names, self.audience_id)
        if self.dry_run:
            pass
        elif segment is None:
            segment = self.hook.create_segment(self.name, query, self.list_ids)
            self.log.info("Created SendGrid segment %r (%s): %s", self.name, segment.get("id"), query)
        elif segment.get("query_dsl") != query:
            self.hook.update_segment(str(segment["id"]), query)
        self.segment_id = str((segment or {}).get("id") or "")
        self.keep()

    def keep(self) -> None:
        if not self.dry_run:
            self.kept.keep(self.key, {"custom_ids": self.custom_ids, "segment_id": self.segment_id})

    def refresh(self) -> tuple[dict[str, str], dict[str, str]]:
        """Forget the kept ids and look them up again.

        :return: the ``lytics_segments`` fields and every custom field, name -> id.
        """
        self.kept.forget(self.key)
        self.log.info(
            "SendGrid answered that a kept custom field no longer exists; looking the fields up again"
        )
        self.look_up()
        return self.fields(), dict(self.custom_ids)

    def add_field(self, field_name: str) -> str:
        """Create an overflow field and widen the segment to it; its id."""
        field_id = self.hook.create_field(field_name)
        self.custom_ids[field_name] = field_id
        self.names.append(field_name)
        if self.segment_id:
            query = segment_query(self.names, self.audience_id)
            try:
                self.hook.update_segment(self.segment_id, query)
            except PermanentServiceError as exc:
                if exc.status != 404:
                    raise
                self.log.info("SendGrid segment %s no longer exists; looking it up again", self.segment_id)
                self.look_up()
        self.keep()
        self.log.info("Created overflow field %s and widened segment %r", field_name, self.name)
        return field_id
