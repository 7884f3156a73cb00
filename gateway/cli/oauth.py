"""``gateway oauth-app create|list|delete`` and ``gateway oauth-grant list|revoke``.

The client secret of a confidential app is printed once, by ``oauth-app create``, and stored only
as a digest. All work is :class:`gateway.features.oauth.service.OAuthService`, as for the admin API.

This module belongs to the CLI package rather than to :mod:`gateway.features.oauth`: it is built on the CLI's
runner and output helpers, so keeping it here makes the dependency point one way (CLI → OAuth
service) instead of the feature importing the CLI back, which was the ``cli``↔``oauth.cli`` cycle.
"""

from __future__ import annotations

import argparse

from gateway.cli.command import Context, Output, Subcommands, action, group
from gateway.cli.output import table
from gateway.core.errors import NotFound
from gateway.features.oauth.apps import client_view, grant_view
from gateway.features.oauth.service import OAuthService

__all__ = ["register"]


def register(sub: Subcommands) -> None:
    a = group(sub, "oauth-app", "manage OAuth apps")
    ac = action(a, "create", create_app, "register an app; prints its client secret once")
    ac.add_argument("--name", required=True, help="shown to users on the consent page")
    ac.add_argument(
        "--redirect-uri", action="append", required=True, help="exact redirect URI (repeatable)"
    )
    ac.add_argument("--scope", action="append", default=[], help="a scope it may request")
    ac.add_argument(
        "--public", action="store_true", help="a public client (native/SPA): no secret, PKCE only"
    )
    ac.add_argument("--workspace", help="owning workspace (default: none, operator-managed)")
    al = action(a, "list", list_apps, "list apps (never secrets)")
    al.add_argument("--workspace", help="only apps owned by this workspace")
    ad = action(a, "delete", delete_app, "delete an app and revoke every token it holds")
    ad.add_argument("client_id", help="the app's client id")

    g = group(sub, "oauth-grant", "users' OAuth grants")
    gl = action(g, "list", list_grants, "active grants")
    gl.add_argument("--user", help="user id or email")
    gl.add_argument("--workspace", help="workspace id or slug")
    gr = action(g, "revoke", revoke_grant, "revoke a grant and every token issued from it")
    gr.add_argument("grant_id", help="the grant's id (from oauth-grant list)")


async def _workspace_id(ctx: Context, key: str | None) -> str | None:
    return (await ctx.services.workspace(key)).id if key else None


async def create_app(ctx: Context, args: argparse.Namespace) -> Output:
    oauth = OAuthService(ctx.store, ctx.config)  # first: no oauth section is the error to report
    ws_id = await _workspace_id(ctx, args.workspace)
    client, secret = await oauth.create_client(
        args.name, args.redirect_uri, args.scope, public=args.public, workspace_id=ws_id
    )
    data = {**client_view(client), "client_secret": secret}
    text = f"OAuth app {client.name!r} registered.\nclient_id: {client.id}\n"
    text += (
        f"client_secret (shown once; store it now): {secret}"
        if secret
        else "public client: no secret (PKCE only)"
    )
    return data, text


async def list_apps(ctx: Context, args: argparse.Namespace) -> Output:
    oauth = OAuthService(ctx.store, ctx.config)
    ws_id = await _workspace_id(ctx, args.workspace)
    views = [client_view(c) for c in await oauth.oauth.list_clients(workspace_id=ws_id)]
    for v in views:
        v["redirect_uris"] = " ".join(v["redirect_uris"])
        v["scopes"] = " ".join(v["scopes"])
    return views, table(views, ["client_id", "name", "type", "scopes", "redirect_uris"])


async def delete_app(ctx: Context, args: argparse.Namespace) -> Output:
    await OAuthService(ctx.store, ctx.config).delete_client(args.client_id)
    return {"client_id": args.client_id, "deleted": True}, f"OAuth app {args.client_id} deleted"


async def list_grants(ctx: Context, args: argparse.Namespace) -> Output:
    oauth = OAuthService(ctx.store, ctx.config)
    user_id = (await ctx.services.user(args.user)).id if args.user else None
    ws_id = await _workspace_id(ctx, args.workspace)
    grants = await oauth.active_grants(user_id=user_id, workspace_id=ws_id)
    views = [grant_view(g, await oauth.oauth.get_client(g.client_id)) for g in grants]
    return views, table(views, ["id", "client_name", "user_id", "workspace_id", "created_at"])


async def revoke_grant(ctx: Context, args: argparse.Namespace) -> Output:
    oauth = OAuthService(ctx.store, ctx.config)
    grant = await oauth.oauth.get_grant(args.grant_id)
    if grant is None or grant.revoked_at is not None:
        raise NotFound(f"No active grant {args.grant_id!r}.", reason="grant")
    await oauth.revoke_grant(grant.id, "revoked_by_cli", "cli")
    return {"id": grant.id, "revoked": True}, f"grant {grant.id} revoked"
