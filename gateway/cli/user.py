"""``gateway user create|list|login-link``."""

from __future__ import annotations

import argparse
import os

from gateway.cli.command import Context, Output, Subcommands, action, group
from gateway.cli.output import table
from gateway.core.durations import parse_duration
from gateway.core.errors import InvalidArgument
from gateway.core.timestamps import iso

__all__ = ["register"]


def register(sub: Subcommands) -> None:
    u = group(sub, "user", "manage users")
    uc = action(u, "create", create, "create a user")
    uc.add_argument("--email", required=True, help="the user's email (unique)")
    uc.add_argument("--name", help="display name")
    uc.add_argument("--id", help="explicit id, e.g. the identity provider's user id (JWT sub)")
    action(u, "list", list_, "list users")
    ul = action(
        u, "login-link", login_link, "print a signed, single-use dashboard sign-in link for a user"
    )
    ul.add_argument("email", help="the user's email (or id)")
    ul.add_argument("--ttl", default="10m", help="how long the link works (at most 1h; e.g. 10m)")
    ul.add_argument(
        "--base-url",
        default=os.environ.get("GATEWAY_DASHBOARD_URL"),
        help="scheme://host[:port] users reach the gateway at (env GATEWAY_DASHBOARD_URL; "
        "default: dashboard.public_url, then the dashboard's listener)",
    )


async def create(ctx: Context, args: argparse.Namespace) -> Output:
    u = await ctx.services.create_user(args.email, args.name, id=args.id)
    return {"id": u.id, "email": u.email, "name": u.name}, f"user {u.id} ({u.email}) created"


async def list_(ctx: Context, args: argparse.Namespace) -> Output:
    rows = [{"id": u.id, "email": u.email, "name": u.name} for u in await ctx.store.list_users()]
    return rows, table(rows, ["id", "email", "name"])


async def login_link(ctx: Context, args: argparse.Namespace) -> Output:
    # Here, not at the top: the dashboard package loads the whole app (its pages need
    # gateway.app), ~250 ms that every other command (and ``gateway --help``) would pay for at start.
    from gateway.features.dashboard import signin

    cfg = ctx.config
    if cfg.dashboard is None:
        raise InvalidArgument(
            f"{cfg.source} has no dashboard section: there is no page to sign in to.",
            reason="no_dashboard",
        )
    ttl = parse_duration(args.ttl)
    if ttl > signin.MAX_LINK_TTL:
        raise InvalidArgument("A sign-in link lives at most 1h.", reason="ttl")
    u = await ctx.services.user(args.email)
    listener = cfg.proxy if cfg.dashboard.listener == "proxy" else cfg.admin
    base = args.base_url or cfg.dashboard.public_url or f"http://{listener}"
    url, exp = signin.login_link(cfg.dashboard, base, u, ttl)
    return (
        {"url": url, "user_id": u.id, "expires_at": iso(exp)},
        f"Sign-in link for {u.email} (works once, until {iso(exp)}):\n{url}",
    )
