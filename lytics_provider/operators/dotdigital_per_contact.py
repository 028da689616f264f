"""Dotdigital calls one contact at a time: adds that fire join actions, unsubscribes and resubscribes,
each outcome recorded in the plan per batch of contacts (see ``sync.act``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lytics_provider.hooks.dotdigital import DotdigitalError, DotdigitalHook
from lytics_provider.operators.dotdigital_options import DotdigitalStep
from lytics_provider.sync.act import act_in_batches
from lytics_provider.sync.plan import Outcome, SyncPlan, Work

PER_CONTACT_BATCH = 50


def message_of(exc: DotdigitalError) -> str:
    """The message of a Dotdigital error body (never the request)."""
    body = exc.body
    return str(body.get("message") if isinstance(body, dict) else body or exc.code or "error")


class DotdigitalPerContactSteps(DotdigitalStep):
    """Adds, unsubscribes and resubscribes of one contact per call."""

    def _contact(self, email: str, fields: dict[str, str]) -> dict[str, Any]:
        contact: dict[str, Any] = {
            "email": email,
            "optInType": self.options.opt_in_type,
            "emailType": self.options.email_type,
        }
        if fields:
            contact["dataFields"] = [{"key": k, "value": v} for k, v in fields.items() if v != ""]
        return contact

    def _resubscribe_contact(
        self, hook: DotdigitalHook, email: str, book: str | None, contact: dict[str, Any] | None = None
    ) -> str:
        answer = hook.resubscribe(
            contact or {"email": email}, book_id=book, no_challenge=self.options.resubscribe_with_no_challenge
        )
        return str(answer.get("status") or "")

    def _add_one_by_one(self, hook: DotdigitalHook, plan: SyncPlan, book: str) -> None:
        def add(rows: list[Work]) -> Iterator[Outcome]:
            for work in rows:
                status, reason = self._add_contact(hook, book, self._contact(work.ident, work.fields()))
                account_status = status if status != "Rejected" else None
                yield (work.ident, book, "add", work.uid, status, account_status, reason)

        act_in_batches(plan, "add", book, PER_CONTACT_BATCH, lambda rows: list(add(rows)))

    def _add_contact(
        self, hook: DotdigitalHook, book: str, contact: dict[str, Any]
    ) -> tuple[str, str | None]:
        """Add one contact (resubscribing it when asked); return (status, reject reason)."""
        try:
            answer = hook.add_contact_to_address_book(book, contact)
        except DotdigitalError as exc:
            if exc.code != "ERROR_CONTACT_SUPPRESSED":
                if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
                    return "Rejected", f"Dotdigital refused the contact: {message_of(exc)}"
                raise
            if not self.options.resubscribes:
                return (
                    "Suppressed",
                    "contact is suppressed in Dotdigital (enable resubscribe to resubscribe it)",
                )
            result = self._resubscribe_contact(hook, contact["email"], None)
            if result != "ContactAdded":
                return "Suppressed", f"resubscribe answered {result}"
            answer = hook.add_contact_to_address_book(book, contact)
        status = str(answer.get("status") or "Subscribed")
        if status == "Unsubscribed":
            if not self.options.resubscribes:
                return (
                    status,
                    "contact unsubscribed from this address book (enable resubscribe to resubscribe it)",
                )
            result = self._resubscribe_contact(hook, contact["email"], book)
            if result == "ContactAdded":
                return "Subscribed", None
            return status, f"address book resubscribe answered {result}"
        return status, None

    def _per_contact(self, plan: SyncPlan, kind: str, book: str, call: Any) -> None:
        act_in_batches(plan, kind, book, PER_CONTACT_BATCH, lambda rows: self._each(rows, kind, book, call))

    @staticmethod
    def _each(rows: list[Work], kind: str, book: str, call: Any) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for work in rows:
            status, reason = call(work.ident)
            outcomes.append((work.ident, book, kind, work.uid, status, None, reason))
        return outcomes

    def _unsubscribes(self, hook: DotdigitalHook, plan: SyncPlan, book: str) -> None:
        target = None if book == "account" else book

        def unsubscribe(email: str) -> tuple[str, str | None]:
            try:
                hook.unsubscribe(email, target)
            except DotdigitalError as exc:
                if exc.code == "ERROR_CONTACT_NOT_FOUND":
                    return "NotInDotdigital", None
                raise
            return "Unsubscribed", None

        self._per_contact(plan, "unsubscribe", book, unsubscribe)

    def _resubscribes(self, hook: DotdigitalHook, plan: SyncPlan, book: str) -> None:
        target = None if book == "account" else book

        def resubscribe(email: str) -> tuple[str, str | None]:
            result = self._resubscribe_contact(hook, email, target)
            if result == "ContactAdded":
                return "Subscribed", None
            if result == "ContactChallenged":
                return "PendingOptIn", None
            return "Suppressed", f"resubscribe answered {result}"

        self._per_contact(plan, "resubscribe", book, resubscribe)
