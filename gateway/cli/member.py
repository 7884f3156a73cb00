"""``gateway member add|remove|list``: who belongs to a workspace, with which role."""

from __future__ import annotations

import argparse

from gateway.cli.command import Context, Output, Subcommands, action, group
from gateway.cli.output import table

__all__ = ["register"]


def register(sub: Subcommands) -> None:
    m = group(sub, "member", "manage memberships")
    for name, run in (("add", add), ("remove", remove)):
        ma = action(m, name, run, f"{name} a member")
        ma.add_argument("--workspace", required=True, help="workspace id or slug")
        ma.add_argument("--user", required=True, help="user id or email")
        if name == "add":
            ma.add_argument("--role", default="member", help="role name from the config's roles")
    ml = action(m, "list", list_, "list members of a workspace")
    ml.add_argument("--workspace", required=True, help="workspace id or slug")


async def add(ctx: Context, args: argparse.Namespace) -> Output:
    m = await ctx.services.add_member(args.workspace, args.user, args.role)
    data = {"user_id": m.user_id, "workspace_id": m.workspace_id, "role": m.role}
    return data, f"{m.user_id} is {m.role} of {m.workspace_id}"


async def remove(ctx: Context, args: argparse.Namespace) -> Output:
    removed = await ctx.services.remove_member(args.workspace, args.user, ctx.actor)
    return {"removed": removed}, "removed" if removed else "was not a member"


async def list_(ctx: Context, args: argparse.Namespace) -> Output:
    ws = await ctx.services.workspace(args.workspace)
    rows = [
        {"user_id": m.user_id, "role": m.role}
        for m in await ctx.store.list_memberships(workspace_id=ws.id)
    ]
    return rows, table(rows, ["user_id", "role"])
