"""Export a scanned Lytics audience to a Mailchimp audience ("Export Audiences").

The ``deliver`` task of the export DAG (``scan`` → ``deliver`` → ``report``): members who enter
are added to (or found in) the Mailchimp audience and tagged; members who exit lose the tag. The
sync engine plans, guards exits, checkpoints each acknowledged batch and writes the rejects; the
adapter is :class:`~lytics_provider.hooks.mailchimp.MailchimpAudienceDestination`. The audience's
id is looked up by every run that sends all members and kept in the job's state; the runs that
send changes reuse it, and look it up again when Mailchimp answers 404 for it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal

from lytics_provider.hooks.mailchimp import MAX_CONNECTIONS, MailchimpAudienceDestination, MailchimpHook
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.sync.kept_setup import KeptSetup
from lytics_provider.sync.operator import AudienceSyncOperator, SyncRunInputs

OnExit = Literal["remove_tag", "ignore"]


class LyticsToMailchimpOperator(AudienceSyncOperator):
    """Sync an audience's members into a Mailchimp audience as tagged members.

    :param mailchimp_list: the Mailchimp audience (list) id or exact name.
    :param tag: the tag of the Lytics audience's members (default: the Lytics audience's name).
    :param mailchimp_conn_id: the ``mailchimp`` connection.
    :param email_field: the Lytics field with the email.
    :param on_exit: ``remove_tag`` (default) takes the tag off members who exit (only members
        this job tagged); ``ignore`` leaves them as they are. Members are never unsubscribed.
    :param batch_size: members per Batch-endpoint request (each enter is two operations).
    :param poll_interval: seconds between polls of a running batch.
    :param batch_timeout: seconds to wait for one batch before the task fails (a retry reattaches).
    :param max_connections: requests in flight at once for the API key, across tasks (1 to 10).
    :param kwargs: :class:`~lytics_provider.sync.operator.AudienceSyncOperator`'s arguments.
    """

    batch_limit = 5000
    template_fields: Sequence[str] = ("mailchimp_list", "tag")
    sleep = staticmethod(time.sleep)

    def __init__(
        self,
        *,
        mailchimp_list: str,
        tag: str | None = None,
        mailchimp_conn_id: str = MailchimpHook.default_conn_name,
        email_field: str = "email",
        on_exit: OnExit = "remove_tag",
        batch_size: int = 1000,
        poll_interval: float = 5.0,
        batch_timeout: float = 3600.0,
        max_connections: int = MAX_CONNECTIONS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        if on_exit not in ("remove_tag", "ignore"):
            raise ValueError(f"on_exit {on_exit!r} is not supported; use 'remove_tag' or 'ignore'")
        self.check_batch_size(batch_size)

    def make_destination(self, inputs: SyncRunInputs) -> MailchimpAudienceDestination:
        hook = MailchimpHook(self.mailchimp_conn_id, max_connections=self.max_connections)
        kept = KeptSetup(self.job_id, f"mailchimp:{self.mailchimp_conn_id}")
        key = f"audience:{self.mailchimp_list}"
        reuse = inputs.previous is not None and not inputs.dry_run  # a full run looks the audience up
        audience = kept.get(key) if reuse else None
        if audience is None:
            audience = self._look_up(hook, kept, key, inputs.dry_run)

        def relocate() -> str:
            kept.forget(key)
            self.log.info("Mailchimp audience %s no longer exists; looking it up again", audience["id"])
            return str(self._look_up(hook, kept, key, inputs.dry_run)["id"])

        tag = self.tag or str(inputs.audience.get("name") or inputs.audience.get("slug") or "").strip()
        if not tag:
            raise ValueError("set tag: the scan named no audience to take the Mailchimp tag's name from")
        self.log.info(
            "Mailchimp audience %s (%s), tag %r; %s",
            audience["id"],
            audience.get("name"),
            tag,
            "members who entered or exited since the last run" if inputs.previous else "every member",
        )
        return MailchimpAudienceDestination(
            hook,
            str(audience["id"]),
            tag,
            relocate=relocate,
            email_field=self.email_field,
            on_exit=self.on_exit,
            batch_size=self.batch_size,
            poll_interval=self.poll_interval,
            timeout=self.batch_timeout,
            sleep=self.sleep,
        )

    def _look_up(self, hook: MailchimpHook, kept: KeptSetup, key: str, dry_run: bool) -> dict[str, Any]:
        """The audience ``mailchimp_list`` names (id and name), kept for the next runs."""
        found = hook.resolve_list(self.mailchimp_list)
        audience = {"id": str(found["id"]), "name": found.get("name")}
        if not dry_run:
            kept.keep(key, audience)
        return audience
