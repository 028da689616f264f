"""Send a scanned Lytics audience's enters and exits to a GA4 data stream ("GA4: Measurement
Protocol Audience Export").

The ``deliver`` task of the export DAG (``scan`` -> ``deliver`` -> ``report``). Each member who
entered the audience is one ``/mp/collect`` request with the event ``enter_{audience_slug}``, each
member who left one with ``exit_{audience_slug}``; params are ``engagement_time_msec``,
``session_id`` and up to 25 Export Scalar Fields, user properties the user id and the member's
audiences. Requests are checked against the protocol's rules first (``/mp/collect`` drops bad
ones without saying so); a member whose request breaks one is a reject naming the rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from lytics_provider.hooks.ga4 import (
    GA4AudienceDestination,
    GA4MeasurementProtocolHook,
    GA4Payload,
    GA4Version,
)
from lytics_provider.jobs.operator_args import keep_arguments
from lytics_provider.sync.event_operator import AudienceEventOperator
from lytics_provider.sync.operator import SyncRunInputs

#: The options that say how a record becomes a request body (:class:`GA4Payload`'s fields).
PAYLOAD_OPTIONS = (
    "user_id_field",
    "user_dimension",
    "segment_dimension",
    "engagement_time_field",
    "session_id_field",
)


class GA4Options(BaseOperator):
    """The options both GA4 exports take: the connection, the data stream and how a request is built.

    :param ga4_conn_id: the ``ga4_measurement_protocol`` connection (API secret in Password).
    :param ga4_version: ``gtag.js`` or ``Firebase``.
    :param measurement_id: the web stream's Measurement ID (gtag.js).
    :param firebase_app_id: the Firebase App ID (Firebase).
    :param client_id: the field holding the GA client id (gtag.js).
    :param app_instance_id_field: the field holding the app instance id (Firebase).
    :param user_id_field: the field sent as ``user_id`` and as the user dimension.
    :param user_dimension: user property of the user id.
    :param segment_dimension: user property of the audiences (``segments``).
    :param engagement_time_field: the field sent as ``engagement_time_msec``.
    :param session_id_field: the field sent as ``session_id``.
    :param export_scalar_fields: fields sent as event params.
    :param kwargs: ``BaseOperator``'s arguments.
    """

    def __init__(
        self,
        *,
        ga4_conn_id: str = "ga4_default",
        ga4_version: GA4Version = "gtag.js",
        measurement_id: str | None = None,
        firebase_app_id: str | None = None,
        client_id: str | None = None,
        app_instance_id_field: str | None = None,
        user_id_field: str | None = None,
        user_dimension: str = "ly_user_id_dim",
        segment_dimension: str = "ly_segments_dim",
        engagement_time_field: str | None = None,
        session_id_field: str | None = None,
        export_scalar_fields: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        keep_arguments(self, locals())
        self.export_scalar_fields = list(export_scalar_fields)

    def stream_query(self) -> dict[str, str]:
        """The query naming the data stream (``measurement_id`` or ``firebase_app_id``)."""
        if self.ga4_version == "Firebase":
            return {"firebase_app_id": str(self.firebase_app_id)}
        return {"measurement_id": str(self.measurement_id)}

    def record_options(self) -> dict[str, Any]:
        """The options naming a record's fields: its identifier's and :data:`PAYLOAD_OPTIONS`."""
        return {
            "client_id": self.client_id,
            "app_instance_id_field": self.app_instance_id_field,
            **{name: getattr(self, name) for name in PAYLOAD_OPTIONS},
            "export_scalar_fields": self.export_scalar_fields,
        }

    def payload_shape(self, identifier: str) -> GA4Payload:
        """How a record becomes a request body, identified by ``identifier``."""
        return GA4Payload(
            identifier=identifier,
            export_scalar_fields=tuple(self.export_scalar_fields),
            **{name: getattr(self, name) for name in PAYLOAD_OPTIONS},
        )


class LyticsToGA4AudienceOperator(GA4Options, AudienceEventOperator):
    """Audience enters and exits as GA4 Measurement Protocol events.

    :param kwargs: :class:`GA4Options`' arguments (the fields are member fields) and
        :class:`~lytics_provider.sync.event_operator.AudienceEventOperator`'s.
    """

    def make_destination(self, inputs: SyncRunInputs) -> GA4AudienceDestination:
        return GA4AudienceDestination(
            hook=GA4MeasurementProtocolHook(self.ga4_conn_id),
            ga4_version=self.ga4_version,
            stream=self.stream_query(),
            **self.record_options(),
            **self.event_arguments(inputs),
        )
