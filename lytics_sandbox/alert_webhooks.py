"""A loopback stand-in for the alert webhooks: Slack Incoming Webhooks and Microsoft Teams webhooks.

Contracts followed:

* Slack, "Sending messages using incoming webhooks" (https://api.slack.com/messaging/webhooks,
  "Handling errors"): ``POST /services/{T…}/{B…}/{token}`` with a JSON body holding ``text`` (or
  ``blocks``); ``200`` with the plain-text body ``ok``; errors are plain text too: ``400
  invalid_payload`` / ``no_text``, ``403 invalid_token``, ``404 no_service`` (a webhook that does not
  exist), ``410 channel_is_archived``; ``429`` with ``Retry-After`` when posting faster than about
  one message a second (injected through :attr:`faults`).
* Microsoft Teams, "Create an Incoming Webhook" and Workflows' "When a Teams webhook request is
  received" (https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/add-incoming-webhook):
  ``POST`` of a JSON message whose ``attachments`` hold an Adaptive Card
  (``contentType: application/vnd.microsoft.card.adaptive``); the Workflows endpoint answers
  ``202 Accepted``; a body that is not such a message gets ``400``; an unknown or revoked
  signature (``sig``) ``401``.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from lytics_sandbox.httpserver import Request, Response, SandboxHTTPServer

CARD = "application/vnd.microsoft.card.adaptive"


def _text(status: int, body: str) -> Response:
    return Response(status=status, body=body.encode(), content_type="text/plain")


class AlertWebhooksSandbox(SandboxHTTPServer):
    """Slack and Teams webhooks on 127.0.0.1; messages kept per webhook.

    :param slack_tokens: the ``T…/B…/token`` paths of the Slack webhooks that exist.
    :param teams_signatures: the ``sig`` values of the Teams webhooks that exist.
    """

    def __init__(
        self, slack_tokens: tuple[str, ...] = (), teams_signatures: tuple[str, ...] = (), **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.slack: dict[str, list[dict[str, Any]]] = {t: [] for t in slack_tokens}
        self.teams: dict[str, list[dict[str, Any]]] = {s: [] for s in teams_signatures}
        self._data_lock = threading.Lock()
        self.add_route("POST", r"/services/(?P<token>[^/]+/[^/]+/[^/]+)", self._slack, "slack")
        self.add_route(
            "POST", r"/workflows/(?P<flow>[^/]+)/triggers/manual/paths/invoke", self._teams, "teams"
        )

    def _slack(self, request: Request) -> Response:
        token = request.params["token"]
        with self._data_lock:
            if token not in self.slack:
                return _text(404, "no_service")
        try:
            body = json.loads(request.body or b"")
        except ValueError:
            return _text(400, "invalid_payload")
        if not isinstance(body, dict):
            return _text(400, "invalid_payload")
        if not (body.get("text") or body.get("blocks") or body.get("attachments")):
            return _text(400, "no_text")
        with self._data_lock:
            self.slack[token].append(body)
        return _text(200, "ok")

    def _teams(self, request: Request) -> Response:
        signature = request.query.get("sig") or ""
        with self._data_lock:
            if signature not in self.teams:
                return Response(401, b'{"error":{"code":"DirectApiAuthorizationRequired"}}')
        try:
            body = json.loads(request.body or b"")
        except ValueError:
            return Response(400, b'{"error":{"code":"InvalidRequestContent"}}')
        attachments = body.get("attachments") if isinstance(body, dict) else None
        if not attachments or not all(
            isinstance(a, dict) and a.get("contentType") == CARD for a in attachments
        ):
            return Response(400, b'{"error":{"code":"InvalidRequestContent"}}')
        with self._data_lock:
            self.teams[signature].append(body)
        return Response(202, b"")
