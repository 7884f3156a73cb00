"""``gateway token create|revoke-certificate|list|show|revoke|rotate``.

The plaintext of a token is printed only by ``create`` and ``rotate``, once.
"""

from __future__ import annotations

import argparse
import hashlib
import ssl
import sys
import time

from gateway.cli.command import Context, Output, Subcommands, action, group
from gateway.cli.output import cell, table
from gateway.core.durations import parse_duration
from gateway.core.timestamps import parse_expiry
from gateway.management.services import token_view

__all__ = ["register"]


def register(sub: Subcommands) -> None:
    t = group(sub, "token", "manage tokens")
    tc = action(t, "create", create, "mint a token; prints it once")
    tc.add_argument("--workspace", required=True, help="workspace id or slug")
    tc.add_argument("--name", required=True, help="a label to recognise the token by")
    tc.add_argument("--scope", action="append", default=[], help="a scope (repeatable)")
    tc.add_argument("--type", help="token type name or prefix (default: the config's first)")
    tc.add_argument(
        "--user",
        help="owning user id or email; when a member, the token never holds more than they do",
    )
    tc.add_argument("--expires-in", help="lifetime from now, e.g. 30d, 12h")
    tc.add_argument("--expires-at", help="ISO 8601 date-time")
    tc.add_argument(
        "--allowed-domain", action="append", default=[], help="allowed Origin host (repeatable)"
    )
    tc.add_argument(
        "--certificate",
        help="for a client_certificate type: the certificate key it maps, e.g. "
        "sha256:<fingerprint>, san:DNS:svc.internal, san:email:a@b.c, subject:CN=svc,O=Example",
    )
    tc.add_argument(
        "--certificate-file",
        help="for a client_certificate type: a PEM certificate; registers its sha256 fingerprint",
    )
    trc = action(
        t,
        "revoke-certificate",
        revoke_certificate,
        "revoke the credential registered for a certificate fingerprint",
    )
    trc.add_argument("fingerprint", help="SHA-256 fingerprint (hex, colons allowed)")
    tl = action(t, "list", list_, "list tokens (never secrets)")
    tl.add_argument("--workspace", help="only this workspace's tokens (id or slug)")
    tl.add_argument("--user", help="only this user's tokens (id or email)")
    for name, run in (("show", show), ("revoke", revoke)):
        ta = action(t, name, run, f"{name} a token")
        ta.add_argument("id", help="token id (tok_…)")
    tr = action(t, "rotate", rotate, "new secret for a token; the old one works for --grace")
    tr.add_argument("id", help="token id (tok_…)")
    tr.add_argument("--grace", default="1h", help="how long the old secret keeps working (e.g. 1h)")


async def create(ctx: Context, args: argparse.Namespace) -> Output:
    expires = parse_expiry(args.expires_in, args.expires_at, time.time())
    record, plaintext = await ctx.services.create_token(
        workspace=args.workspace,
        name=args.name,
        # No --scope: what the owning user holds (a member's PAT: their role's scopes).
        scopes=args.scope or None,
        type=args.type,
        user=args.user,
        expires_at=expires,
        allowed_domains=args.allowed_domain,
        actor=ctx.actor,
        certificate_key=_certificate_key(args.certificate, args.certificate_file),
    )
    note = _scopeless_note(ctx, args)
    if note is not None:
        print(note, file=sys.stderr)
    data = {**token_view(record), "token": plaintext}
    return data, f"token {record.id} created. It is shown once; store it now:\n{plaintext}"


async def list_(ctx: Context, args: argparse.Namespace) -> Output:
    views = [token_view(t) for t in await ctx.services.list_tokens(args.workspace, args.user)]
    return views, table(views, ["id", "name", "prefix", "status", "scopes", "last_used_at"])


async def show(ctx: Context, args: argparse.Namespace) -> Output:
    data = token_view(await ctx.services.token(args.id))
    return data, "\n".join(f"{k}: {cell(v)}" for k, v in data.items())


async def revoke(ctx: Context, args: argparse.Namespace) -> Output:
    t = await ctx.services.revoke_token(args.id, ctx.actor)
    return token_view(t), f"token {t.id} revoked"


async def revoke_certificate(ctx: Context, args: argparse.Namespace) -> Output:
    t = await ctx.services.revoke_certificate(args.fingerprint, ctx.actor)
    return token_view(t), f"token {t.id} revoked"


async def rotate(ctx: Context, args: argparse.Namespace) -> Output:
    grace = parse_duration(args.grace)
    record, plaintext = await ctx.services.rotate_token(args.id, grace, ctx.actor)
    data = {**token_view(record), "token": plaintext}
    return data, f"token {record.id} rotated. New secret, shown once:\n{plaintext}"


def _scopeless_note(ctx: Context, args: argparse.Namespace) -> str | None:
    """What a ``token create`` without ``--scope`` does, when that is not obvious."""
    if args.scope:
        return None
    tt = ctx.services.token_type(args.type)
    if tt.inherit_user_permissions:
        return (
            f"note: no --scope given: this {tt.prefix} token acts with {args.user}'s current "
            "role in the workspace (and follows it when the role changes)."
        )
    cfg = ctx.config
    if not any(r.scopes_any or r.scopes_all for r in cfg.routes):
        return None  # no route asks for a scope: a key without scopes reaches everything
    known = ", ".join(sorted(cfg.scopes.known)) if cfg.scopes.known else "see the config's scopes"
    return (
        f"note: no --scope given: this {tt.prefix} token has no scopes, so every route that "
        f"requires one refuses it (403 FORBIDDEN). Add --scope (repeatable): {known}."
    )


def _certificate_key(key: str | None, pem_file: str | None) -> str | None:
    """``--certificate`` as given, or the fingerprint key of ``--certificate-file``."""
    if pem_file is None:
        return key
    with open(pem_file, encoding="ascii") as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return "sha256:" + hashlib.sha256(der).hexdigest()
