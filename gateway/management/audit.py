"""The management layer's audit trail: who acted (:class:`Actor`), the event a token change writes
in the same transaction (:func:`audit_entry`), and the JSON shape the CLI and the admin API list
events in (:func:`audit_view`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from gateway.core.timestamps import iso
from gateway.store.base import AuditEntry, AuditEvent, TokenRecord

__all__ = ["Actor", "audit_entry", "audit_view"]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who performs a management action, for the audit log."""

    id: str | None = None  # user id, token id, or "cli"
    address: str | None = None


def audit_entry(
    action: str,
    t: TokenRecord,
    actor: Actor,
    prefix: str | None = None,
    detail: str | None = None,
) -> AuditEntry:
    """The audit event the store writes in the same transaction as the change (issue 23)."""
    return AuditEntry(
        action,
        at=time.time(),
        actor=actor.id,
        address=actor.address,
        token_id=t.id,
        visible_prefix=prefix or t.visible_prefix,
        workspace_id=t.workspace_id,
        detail=detail,
    )


def audit_view(e: AuditEvent) -> dict[str, object]:
    """The public JSON shape of an audit event, as the CLI and the admin API list it."""
    return {
        "at": iso(e.at),
        "action": e.action,
        "actor": e.actor,
        "address": e.address,
        "token_id": e.token_id,
        "token_prefix": e.visible_prefix,
        "workspace_id": e.workspace_id,
    }
