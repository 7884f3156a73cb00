"""``gateway oauth-app create|list|delete`` and ``gateway oauth-grant list|revoke``.

The client secret of a confidential app is printed once, by ``oauth-app create``, and stored only
as a digest. All work is :class:`gateway.oauth.service.OAuthService`, as for the admin API.
"""

from __future__ import annotations

import argparse
from typing import Any

from gateway.config import Config
from gateway.errors import NotFound
from gateway.oauth.service import OAuthService, client_view, grant_view
from gateway.services import Services

__all__ = ["add_parsers", "run"]

COMMANDS = ("oauth-app", "oauth-grant")


def add_parsers(sub: Any) -> None:
    a = sub.add_parser("oauth-app", help="manage OAuth apps").add_subparsers(
        dest="action", required=True
    )
    ac = a.add_parser("create", help="register an app; prints its client secret once")
    ac.add_argument("--name", required=True, help="shown to users on the consent page")
    ac.add_argument(
        "--redirect-uri", action="append", required=True, help="exact redirect URI (repeatable)"
    )
    ac.add_argument("--scope", action="append", default=[], help="a scope it may request")
    ac.add_argument(
        "--public", action="store_true", help="a public client (native/SPA): no secret, PKCE only"
    )
    ac.add_argument("--workspace", help="owning workspace (default: none, operator-managed)")
    al = a.add_parser("list", help="list apps (never secrets)")
    al.add_argument("--workspace", help="only apps owned by this workspace")
    ad = a.add_parser("delete", help="delete an app and revoke every token it holds")
    ad.add_argument("client_id")

    g = sub.add_parser("oauth-grant", help="users' OAuth grants").add_subparsers(
        dest="action", required=True
    )
    gl = g.add_parser("list", help="active grants")
    gl.add_argument("--user", help="user id or email")
    gl.add_argument("--workspace", help="workspace id or slug")
    gr = g.add_parser("revoke", help="revoke a grant and every token issued from it")
    gr.add_argument("grant_id")


def _rows(views: list[dict[str, Any]], cols: list[str]) -> str:
    from gateway.cli import _table

    return _table(views, cols)


async def run(svc: Services, cfg: Config, args: argparse.Namespace) -> tuple[Any, str]:
    """(JSON data, text) for one oauth-app / oauth-grant command."""
    oauth = OAuthService(svc.store, cfg)
    cmd, act = args.command, args.action
    if cmd == "oauth-app" and act == "create":
        ws_id = (await svc.workspace(args.workspace)).id if args.workspace else None
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
    if cmd == "oauth-app" and act == "list":
        ws_id = (await svc.workspace(args.workspace)).id if args.workspace else None
        views = [client_view(c) for c in await oauth.oauth.list_clients(workspace_id=ws_id)]
        for v in views:
            v["redirect_uris"] = " ".join(v["redirect_uris"])
            v["scopes"] = " ".join(v["scopes"])
        return views, _rows(views, ["client_id", "name", "type", "scopes", "redirect_uris"])
    if cmd == "oauth-app" and act == "delete":
        await oauth.delete_client(args.client_id)
        return {"client_id": args.client_id, "deleted": True}, f"OAuth app {args.client_id} deleted"
    if cmd == "oauth-grant" and act == "list":
        user_id = (await svc.user(args.user)).id if args.user else None
        ws_id = (await svc.workspace(args.workspace)).id if args.workspace else None
        grants = await oauth.active_grants(user_id=user_id, workspace_id=ws_id)
        views = [grant_view(g, await oauth.oauth.get_client(g.client_id)) for g in grants]
        return views, _rows(views, ["id", "client_name", "user_id", "workspace_id", "created_at"])
    if cmd == "oauth-grant" and act == "revoke":
        grant = await oauth.oauth.get_grant(args.grant_id)
        if grant is None or grant.revoked_at is not None:
            raise NotFound(f"No active grant {args.grant_id!r}.", reason="grant")
        await oauth.revoke_grant(grant.id, "revoked_by_cli", "cli")
        return {"id": grant.id, "revoked": True}, f"grant {grant.id} revoked"
    raise SystemExit(f"unknown command {cmd} {act}")  # pragma: no cover - argparse prevents it
