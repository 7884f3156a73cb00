"""``gateway workspace create|list|delete|set-plan``."""

from __future__ import annotations

import argparse

from gateway.cli.command import Context, Output, Subcommands, action, group
from gateway.cli.output import table
from gateway.core.timestamps import iso

__all__ = ["register"]


def register(sub: Subcommands) -> None:
    w = group(sub, "workspace", "manage workspaces")
    wc = action(w, "create", create, "create a workspace")
    wc.add_argument("--name", required=True, help="display name")
    wc.add_argument(
        "--slug", help="short unique name used in URLs and hosts (default: from --name)"
    )
    wc.add_argument("--id", help="explicit id (e.g. a 24-hex ObjectId)")
    wc.add_argument("--plan", default="free", help="plan name (default: free)")
    action(w, "list", list_, "list workspaces")
    wd = action(w, "delete", delete, "delete a workspace (its tokens stop working)")
    wd.add_argument("workspace", help="workspace id or slug")
    wp = action(w, "set-plan", set_plan, "change a workspace's plan")
    wp.add_argument("workspace", help="workspace id or slug")
    wp.add_argument("plan", help="the new plan name")


async def create(ctx: Context, args: argparse.Namespace) -> Output:
    ws = await ctx.services.create_workspace(args.name, args.slug, args.id, args.plan)
    data = {"id": ws.id, "slug": ws.slug, "name": ws.name, "plan": ws.plan}
    return data, f"workspace {ws.id} ({ws.slug}) created"


async def list_(ctx: Context, args: argparse.Namespace) -> Output:
    rows = [
        {"id": w.id, "slug": w.slug, "name": w.name, "plan": w.plan, "deleted": iso(w.deleted_at)}
        for w in await ctx.store.list_workspaces()
    ]
    return rows, table(rows, ["id", "slug", "name", "plan", "deleted"])


async def delete(ctx: Context, args: argparse.Namespace) -> Output:
    ws = await ctx.services.delete_workspace(args.workspace)
    return {"id": ws.id, "deleted": True}, f"workspace {ws.id} deleted"


async def set_plan(ctx: Context, args: argparse.Namespace) -> Output:
    ws = await ctx.services.set_plan(args.workspace, args.plan)
    return {"id": ws.id, "plan": ws.plan}, f"workspace {ws.id} is on {ws.plan}"
