"""``gateway audit list``: token create/rotate/revoke events, newest first."""

from __future__ import annotations

import argparse

from gateway.cli.command import Context, Output, Subcommands, action, group
from gateway.cli.output import table
from gateway.management.audit import audit_view

__all__ = ["register"]


def register(sub: Subcommands) -> None:
    a = group(sub, "audit", "the audit log")
    al = action(a, "list", list_, "token create/rotate/revoke events, newest first")
    al.add_argument("--workspace", help="workspace id or slug (default: all)")
    al.add_argument("--limit", type=int, default=100, help="at most this many events (default 100)")


async def list_(ctx: Context, args: argparse.Namespace) -> Output:
    ws_id = (await ctx.services.workspace(args.workspace)).id if args.workspace else None
    events = [
        audit_view(e) for e in await ctx.store.list_audit(workspace_id=ws_id, limit=args.limit)
    ]
    return events, table(events, ["at", "action", "actor", "address", "token_id", "token_prefix"])
