"""Export a scanned Lytics audience to Braze as a custom attribute ("Export Audiences").

The ``deliver`` task of the export DAG (``scan`` -> ``deliver`` -> ``report``). Members who
entered (and members whose exported fields moved) are sent to ``POST /users/track`` in requests of
up to 75 attribute objects, each with the member's Braze identifier, the exported fields and the
membership attribute set ``true``; members who left get it set ``false`` (or removed), only when
this job set it. Objects Braze refuses in a partial-success answer land in ``rejects.jsonl``.
Planning, checkpoints, the exit guard and the ledger are the sync engine's
(:class:`~lytics_provider.sync.operator.AudienceSyncOperator`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from lytics_provider.hooks.braze import MAX_ATTRIBUTES_PER_REQUEST, BrazeAudienceDestination, BrazeHook
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.sync.operator import AudienceSyncOperator, SyncRunInputs


def membership_attribute_name(template: str, audience: dict[str, Any], fallback: str) -> str:
    """The attribute name: ``template`` with ``{audience_slug}`` filled from the scanned audience."""
    slug = str(audience.get("slug") or fallback)
    return template.replace("{audience_slug}", slug)


class LyticsToBrazeOperator(AudienceSyncOperator):
    """Set Braze users' audience membership attribute from the scanned audience.

    :param braze_conn_id: the ``braze`` connection (REST API key, Braze Instance).
    :param audience: the audience slug (names the attribute when the scan does not).
    :param external_user_id: member field holding the Braze ``external_id``.
    :param braze_id: member field holding the ``braze_id``.
    :param email: member field holding the email.
    :param phone: member field holding the phone number.
    :param user_alias_label: the ``alias_label`` of the User Alias.
    :param user_alias_field: member field holding the ``alias_name``.
    :param membership_attribute: the custom attribute name (``{audience_slug}`` is filled in).
    :param on_exit: ``set_false``, ``remove_attribute`` or ``ignore``.
    :param fields: member fields also sent as attributes (None: only the identifiers).
    :param fields_to_trigger: a member whose fields moved is sent again only when one of these moved.
    :param batch_size: attribute objects per ``/users/track`` request (at most 75).
    :param kwargs: :class:`~lytics_provider.sync.operator.AudienceSyncOperator`'s arguments.
    """

    template_fields = ("audience",)

    def __init__(
        self,
        *,
        braze_conn_id: str = BrazeHook.default_conn_name,
        audience: str = "",
        external_user_id: str | None = None,
        braze_id: str | None = None,
        email: str | None = None,
        phone: str | None = None,
        user_alias_label: str | None = None,
        user_alias_field: str | None = None,
        membership_attribute: str = "lytics_{audience_slug}",
        on_exit: Literal["set_false", "remove_attribute", "ignore"] = "set_false",
        fields: Sequence[str] | None = None,
        fields_to_trigger: Sequence[str] | None = None,
        batch_size: int = MAX_ATTRIBUTES_PER_REQUEST,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())

    def make_destination(self, inputs: SyncRunInputs) -> BrazeAudienceDestination:
        identifiers = {
            "external_id": self.external_user_id,
            "braze_id": self.braze_id,
            "user_alias": self.user_alias_field,
            "email": self.email,
            "phone": self.phone,
        }
        return BrazeAudienceDestination(
            hook=BrazeHook(self.braze_conn_id),
            identifiers={k: v for k, v in identifiers.items() if v},  # type: ignore[misc]
            user_alias_label=self.user_alias_label,
            membership_attribute=membership_attribute_name(
                self.membership_attribute, inputs.audience, self.audience
            ),
            on_exit=self.on_exit,
            export_fields=list(self.fields or ()),
            batch_size=self.batch_size,
            trigger_fields=self.fields_to_trigger,
        )
