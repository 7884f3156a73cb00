"""The ``gateway`` command: serve, check, and management of workspaces, users, members and tokens.

Every command takes ``--config`` (default ``$GATEWAY_CONFIG``, then ``./gateway.yaml``) and ``--json``
for machine-readable output. Management commands call :mod:`gateway.services`, the same layer the
admin API uses. A plaintext token is printed only by ``token create`` and ``token rotate``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import yaml

from gateway import __version__
from gateway import config as config_mod
from gateway.config import Config, ConfigError
from gateway.errors import GatewayError, InvalidArgument, StoreUnavailable
from gateway.services import Actor, Services, iso, parse_duration, parse_expiry, token_view
from gateway.store import open_store

__all__ = ["main"]

Command = Callable[[Services, argparse.Namespace], Awaitable[Any]]


def _default_config() -> str:
    return os.environ.get("GATEWAY_CONFIG", "gateway.yaml")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gateway", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    p.add_argument(
        "--config",
        default=_default_config(),
        help="config file (env GATEWAY_CONFIG; default ./gateway.yaml)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable JSON output")
    p.add_argument("--version", action="version", version=f"gateway {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the gateway")
    s.add_argument(
        "--listen",
        default=os.environ.get("GATEWAY_LISTEN"),
        help="proxy HOST:PORT (env GATEWAY_LISTEN; overrides the config)",
    )
    s.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("GATEWAY_WORKERS", "1")),
        help="worker processes sharing the port (env GATEWAY_WORKERS)",
    )

    sub.add_parser("check", help="validate the config; exit 1 on any error")
    sub.add_parser("config-schema", help="print the JSON Schema of gateway.yaml (for editors)")

    d = sub.add_parser(
        "demo", help="quick start: demo upstream, SQLite store, minted tokens, then serve"
    )
    d.add_argument("--port", type=int, default=None, help="proxy port (default: the config's)")
    d.add_argument("--upstream-port", type=int, default=9000, help="demo upstream port")

    w = sub.add_parser("workspace", help="manage workspaces").add_subparsers(
        dest="action", required=True
    )
    wc = w.add_parser("create", help="create a workspace")
    wc.add_argument("--name", required=True)
    wc.add_argument("--slug")
    wc.add_argument("--id", help="explicit id (e.g. a 24-hex ObjectId)")
    wc.add_argument("--plan", default="free")
    w.add_parser("list", help="list workspaces")
    wd = w.add_parser("delete", help="delete a workspace (its tokens stop working)")
    wd.add_argument("workspace")
    wp = w.add_parser("set-plan", help="change a workspace's plan")
    wp.add_argument("workspace")
    wp.add_argument("plan")

    u = sub.add_parser("user", help="manage users").add_subparsers(dest="action", required=True)
    uc = u.add_parser("create", help="create a user")
    uc.add_argument("--email", required=True)
    uc.add_argument("--name")
    uc.add_argument("--id", help="explicit id, e.g. the identity provider's user id (JWT sub)")
    u.add_parser("list", help="list users")
    ul = u.add_parser(
        "login-link", help="print a signed, single-use dashboard sign-in link for a user"
    )
    ul.add_argument("email", help="the user's email (or id)")
    ul.add_argument("--ttl", default="10m", help="how long the link works (at most 1h; e.g. 10m)")
    ul.add_argument(
        "--base-url",
        default=os.environ.get("GATEWAY_DASHBOARD_URL"),
        help="scheme://host[:port] users reach the gateway at (env GATEWAY_DASHBOARD_URL; "
        "default: dashboard.public_url, then the dashboard's listener)",
    )

    m = sub.add_parser("member", help="manage memberships").add_subparsers(
        dest="action", required=True
    )
    for action in ("add", "remove"):
        ma = m.add_parser(action, help=f"{action} a member")
        ma.add_argument("--workspace", required=True, help="workspace id or slug")
        ma.add_argument("--user", required=True, help="user id or email")
        if action == "add":
            ma.add_argument("--role", default="member", help="role name from the config's roles")
    ml = m.add_parser("list", help="list members of a workspace")
    ml.add_argument("--workspace", required=True)

    t = sub.add_parser("token", help="manage tokens").add_subparsers(dest="action", required=True)
    tc = t.add_parser("create", help="mint a token; prints it once")
    tc.add_argument("--workspace", required=True, help="workspace id or slug")
    tc.add_argument("--name", required=True)
    tc.add_argument("--scope", action="append", default=[], help="a scope (repeatable)")
    tc.add_argument("--type", help="token type name or prefix (default: the config's first)")
    tc.add_argument(
        "--user",
        help="owning user id or email; when a member, the token never holds more than they do",
    )
    tc.add_argument("--expires-in", help="e.g. 30d, 12h")
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
    trc = t.add_parser(
        "revoke-certificate", help="revoke the credential registered for a certificate fingerprint"
    )
    trc.add_argument("fingerprint", help="SHA-256 fingerprint (hex, colons allowed)")
    tl = t.add_parser("list", help="list tokens (never secrets)")
    tl.add_argument("--workspace")
    tl.add_argument("--user")
    for action in ("show", "revoke"):
        ta = t.add_parser(action, help=f"{action} a token")
        ta.add_argument("id")
    tr = t.add_parser("rotate", help="new secret for a token; the old one works for --grace")
    tr.add_argument("id")
    tr.add_argument("--grace", default="1h", help="how long the old secret keeps working (e.g. 1h)")
    ms = sub.add_parser(
        "migrate-store",
        help="copy every workspace, user, membership, token and audit event to another store",
        description="Copy a whole store (e.g. SQLite to PostgreSQL) in one transaction on the "
        "target, which must be empty. Token hashes are copied as they are: keep the same pepper. "
        "Stop writes (or the gateways) on the source while it runs.",
    )
    ms.add_argument(
        "--from",
        dest="source",
        required=os.environ.get("GATEWAY_MIGRATE_FROM") is None,
        help="source store URL, e.g. sqlite:///gateway.db (env GATEWAY_MIGRATE_FROM)",
        default=os.environ.get("GATEWAY_MIGRATE_FROM"),
    )
    ms.add_argument(
        "--to",
        dest="target",
        required=os.environ.get("GATEWAY_MIGRATE_TO") is None,
        help="target store URL, e.g. postgresql://user@host/db (env GATEWAY_MIGRATE_TO)",
        default=os.environ.get("GATEWAY_MIGRATE_TO"),
    )
    a = sub.add_parser("audit", help="the audit log").add_subparsers(dest="action", required=True)
    al = a.add_parser("list", help="token create/rotate/revoke events, newest first")
    al.add_argument("--workspace", help="workspace id or slug (default: all)")
    al.add_argument("--limit", type=int, default=100)
    from gateway.oauth import cli as oauth_cli

    oauth_cli.add_parsers(sub)
    return p


def _print(args: argparse.Namespace, data: object, text: str) -> None:
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(text)


def _cell(value: object) -> str:
    """A value as a person reads it: lists (scopes, domains) space-separated, nothing as blank."""
    if isinstance(value, list | tuple | set | frozenset):
        return " ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _table(rows: Sequence[Mapping[str, object]], cols: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    widths = {c: max(len(c), *(len(_cell(r.get(c))) for r in rows)) for c in cols}
    head = "  ".join(c.upper().ljust(widths[c]) for c in cols)
    body = ["  ".join(_cell(r.get(c)).ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join([head, *body])


def _scopeless_note(cfg: Config, svc: Services, args: argparse.Namespace) -> str | None:
    """What a ``token create`` without ``--scope`` does, when that is not obvious."""
    if args.scope:
        return None
    tt = svc.token_type(args.type)
    if tt.inherit_user_permissions:
        return (
            f"note: no --scope given: this {tt.prefix} token acts with {args.user}'s current "
            "role in the workspace (and follows it when the role changes)."
        )
    if not any(r.scopes_any or r.scopes_all for r in cfg.routes):
        return None  # no route asks for a scope: a key without scopes reaches everything
    known = ", ".join(sorted(cfg.scopes.known)) if cfg.scopes.known else "see the config's scopes"
    return (
        f"note: no --scope given: this {tt.prefix} token has no scopes, so every route that "
        f"requires one refuses it (403 FORBIDDEN). Add --scope (repeatable): {known}."
    )


async def _run_management(cfg: Config, args: argparse.Namespace) -> int:
    store = open_store(cfg.store)
    await store.open()
    svc = Services(store, cfg)
    actor = Actor(id="cli", address=None)
    try:
        cmd, act = args.command, getattr(args, "action", None)
        if cmd == "workspace" and act == "create":
            ws = await svc.create_workspace(args.name, args.slug, args.id, args.plan)
            d: dict[str, object] = {"id": ws.id, "slug": ws.slug, "name": ws.name, "plan": ws.plan}
            _print(args, d, f"workspace {ws.id} ({ws.slug}) created")
        elif cmd == "workspace" and act == "list":
            rows = [
                {
                    "id": w.id,
                    "slug": w.slug,
                    "name": w.name,
                    "plan": w.plan,
                    "deleted": iso(w.deleted_at),
                }
                for w in await store.list_workspaces()
            ]
            _print(args, rows, _table(rows, ["id", "slug", "name", "plan", "deleted"]))
        elif cmd == "workspace" and act == "delete":
            ws = await svc.delete_workspace(args.workspace)
            _print(args, {"id": ws.id, "deleted": True}, f"workspace {ws.id} deleted")
        elif cmd == "workspace" and act == "set-plan":
            ws = await svc.set_plan(args.workspace, args.plan)
            _print(args, {"id": ws.id, "plan": ws.plan}, f"workspace {ws.id} is on {ws.plan}")
        elif cmd == "user" and act == "create":
            u = await svc.create_user(args.email, args.name, id=args.id)
            _print(
                args,
                {"id": u.id, "email": u.email, "name": u.name},
                f"user {u.id} ({u.email}) created",
            )
        elif cmd == "user" and act == "list":
            rows = [
                {"id": u.id, "email": u.email, "name": u.name} for u in await store.list_users()
            ]
            _print(args, rows, _table(rows, ["id", "email", "name"]))
        elif cmd == "user" and act == "login-link":
            from gateway.dashboard.sessions import MAX_LINK_TTL, login_link

            if cfg.dashboard is None:
                raise InvalidArgument(
                    f"{cfg.source} has no dashboard section: there is no page to sign in to.",
                    reason="no_dashboard",
                )
            ttl = parse_duration(args.ttl)
            if ttl > MAX_LINK_TTL:
                raise InvalidArgument("A sign-in link lives at most 1h.", reason="ttl")
            u = await svc.user(args.email)
            listener = cfg.proxy if cfg.dashboard.listener == "proxy" else cfg.admin
            base = args.base_url or cfg.dashboard.public_url or f"http://{listener}"
            url, exp = login_link(cfg.dashboard, base, u, ttl)
            _print(
                args,
                {"url": url, "user_id": u.id, "expires_at": iso(exp)},
                f"Sign-in link for {u.email} (works once, until {iso(exp)}):\n{url}",
            )
        elif cmd == "member" and act == "add":
            m = await svc.add_member(args.workspace, args.user, args.role)
            d = {"user_id": m.user_id, "workspace_id": m.workspace_id, "role": m.role}
            _print(args, d, f"{m.user_id} is {m.role} of {m.workspace_id}")
        elif cmd == "member" and act == "remove":
            removed = await svc.remove_member(args.workspace, args.user, actor)
            _print(args, {"removed": removed}, "removed" if removed else "was not a member")
        elif cmd == "member" and act == "list":
            ws = await svc.workspace(args.workspace)
            rows = [
                {"user_id": m.user_id, "role": m.role}
                for m in await store.list_memberships(workspace_id=ws.id)
            ]
            _print(args, rows, _table(rows, ["user_id", "role"]))
        elif cmd == "token" and act == "create":
            expires = parse_expiry(args.expires_in, args.expires_at, time.time())
            record, plaintext = await svc.create_token(
                workspace=args.workspace,
                name=args.name,
                # No --scope: what the owning user holds (a member's PAT: their role's scopes).
                scopes=args.scope or None,
                type=args.type,
                user=args.user,
                expires_at=expires,
                allowed_domains=args.allowed_domain,
                actor=actor,
                certificate_key=_certificate_key(args.certificate, args.certificate_file),
            )
            d = {**token_view(record), "token": plaintext}
            note = _scopeless_note(cfg, svc, args)
            if note is not None:
                print(note, file=sys.stderr)
            _print(
                args, d, f"token {record.id} created. It is shown once; store it now:\n{plaintext}"
            )
        elif cmd == "token" and act == "list":
            views = [token_view(t) for t in await svc.list_tokens(args.workspace, args.user)]
            _print(
                args,
                views,
                _table(views, ["id", "name", "prefix", "status", "scopes", "last_used_at"]),
            )
        elif cmd == "token" and act == "show":
            d = token_view(await svc.token(args.id))
            _print(args, d, "\n".join(f"{k}: {_cell(v)}" for k, v in d.items()))
        elif cmd == "token" and act == "revoke":
            t = await svc.revoke_token(args.id, actor)
            _print(args, token_view(t), f"token {t.id} revoked")
        elif cmd == "token" and act == "revoke-certificate":
            t = await svc.revoke_certificate(args.fingerprint, actor)
            _print(args, token_view(t), f"token {t.id} revoked")
        elif cmd == "token" and act == "rotate":
            record, plaintext = await svc.rotate_token(args.id, parse_duration(args.grace), actor)
            d = {**token_view(record), "token": plaintext}
            _print(args, d, f"token {record.id} rotated. New secret, shown once:\n{plaintext}")
        elif cmd == "audit" and act == "list":
            ws_id = (await svc.workspace(args.workspace)).id if args.workspace else None
            events = [
                {
                    "at": iso(e.at),
                    "action": e.action,
                    "actor": e.actor,
                    "address": e.address,
                    "token_id": e.token_id,
                    "token_prefix": e.visible_prefix,
                    "workspace_id": e.workspace_id,
                }
                for e in await store.list_audit(workspace_id=ws_id, limit=args.limit)
            ]
            _print(
                args,
                events,
                _table(events, ["at", "action", "actor", "address", "token_id", "token_prefix"]),
            )
        elif cmd in ("oauth-app", "oauth-grant"):
            from gateway.oauth import cli as oauth_cli

            data, text = await oauth_cli.run(svc, cfg, args)
            _print(args, data, text)
        else:  # pragma: no cover - argparse prevents this
            raise SystemExit(f"unknown command {cmd} {act}")
        return 0
    except GatewayError as err:
        if args.json:
            print(
                json.dumps({"error": {"code": err.code, "message": err.message}}), file=sys.stderr
            )
        else:
            print(f"gateway: {err.message}", file=sys.stderr)
        return 1
    finally:
        await store.close()


def _check(args: argparse.Namespace) -> int:
    try:
        cfg = config_mod.load(args.config)
    except ConfigError as exc:
        for p in exc.problems:
            print(p.render(exc.source), file=sys.stderr)
        if args.json:
            print(
                json.dumps({"ok": False, "problems": [p.render(exc.source) for p in exc.problems]})
            )
        return 1
    from gateway.builtin import HANDLERS
    from gateway.extensions import load_all

    load_all()
    missing = [r for r in cfg.routes if r.handler and r.handler not in HANDLERS]
    for r in missing:
        print(
            f"error: {cfg.source}: routes[{r.index}].handler: unknown handler (got {r.handler!r})",
            file=sys.stderr,
        )
    warnings = [w.render(cfg.source) for w in (*cfg.warnings, *_unreachable_environments(cfg))]
    for w in warnings:
        print(w, file=sys.stderr)
    ok = not missing
    if args.json:
        print(
            json.dumps(
                {
                    "ok": ok,
                    "routes": len(cfg.routes),
                    "warnings": warnings,
                }
            )
        )
    elif ok:
        print(f"{cfg.source}: OK ({len(cfg.routes)} routes, {len(warnings)} warnings)")
    return 0 if ok else 1


def _config_schema() -> int:
    """``gateway config-schema``: the schema config/gateway.schema.json holds; needs no config."""
    from gateway.config.schema import render

    sys.stdout.write(render())
    return 0


def _unreachable_environments(cfg: Config) -> list[config_mod.Problem]:
    """An upstream with per-environment URLs that has none for a token type's environment: every
    such token gets 403 ENVIRONMENT_UNAVAILABLE there, usually because a variable is unset."""
    used = {r.upstream for r in cfg.routes if r.upstream}
    problems = []
    for name, up in cfg.upstreams.items():
        if name not in used or not up.environments:
            continue
        for env in sorted({tt.environment for tt in cfg.token_types}):
            if up.url_for(env) is not None:
                continue
            prefixes = ", ".join(tt.prefix for tt in cfg.token_types if tt.environment == env)
            var = _variable_behind(cfg.source, name, env)
            problems.append(
                config_mod.Problem(
                    f"upstreams.{name}.environments.{env}",
                    f"resolves to nothing{f' ({var} is unset or empty)' if var else ''}, so "
                    f"{prefixes} tokens get 403 ENVIRONMENT_UNAVAILABLE on every route to {name}",
                    warning=True,
                )
            )
    return problems


def _variable_behind(source: str, upstream: str, env: str) -> str | None:
    """The ``${VAR}`` the file wrote for that URL (the loaded config holds only the result)."""
    try:
        with open(source, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
        text = raw["upstreams"][upstream]["environments"][env]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    m = re.search(r"\$\{(\w+)", str(text))
    return m.group(1) if m else None


def _migrate_store_cmd(args: argparse.Namespace) -> int:
    src_path = args.source.removeprefix("sqlite:///")
    if args.source.startswith("sqlite:///") and not os.path.exists(src_path):
        # Opening would create an empty database and "copy" nothing: almost surely a typo.
        print(f"gateway: migrate-store: no SQLite store at {src_path}", file=sys.stderr)
        return 1
    return asyncio.run(_migrate_store(args))


async def _migrate_store(args: argparse.Namespace) -> int:
    source, target = open_store(args.source), open_store(args.target)
    try:
        await source.open()
        await target.open()
        dump = await source.export_all()
        await target.import_all(dump)
        copied = await target.export_all()
        if copied != dump:  # pragma: no cover - import_all is one transaction; belt and braces
            raise GatewayError("the copy differs from the source", reason="migrate_verify")
    except GatewayError as err:
        print(f"gateway: migrate-store failed: {err.message}", file=sys.stderr)
        return 1
    finally:
        await source.close()
        await target.close()
    counts = {
        "workspaces": len(dump.workspaces),
        "users": len(dump.users),
        "memberships": len(dump.memberships),
        "tokens": len(dump.tokens),
        "secrets": len(dump.secrets),
        "audit_events": len(dump.audit),
        "used_nonces": len(dump.nonces),
        "oauth_apps": len(dump.oauth_clients),
        "oauth_grants": len(dump.oauth_grants),
        "oauth_codes": len(dump.oauth_codes),
        "oauth_refresh_tokens": len(dump.oauth_refresh),
    }
    _print(
        args,
        counts,
        "copied " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items()),
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "migrate-store":
        # Needs no config file: both stores are named on the command line.
        return _migrate_store_cmd(args)
    if args.command == "check":
        return _check(args)
    if args.command == "config-schema":
        return _config_schema()
    if args.command == "demo":
        from gateway.demo import run_demo

        return run_demo(args.config, args.port, args.upstream_port)
    if args.command == "serve":
        from gateway.listen import ListenError
        from gateway.server import serve

        try:
            return serve(args.config, args.listen, args.workers)
        except ConfigError as exc:
            print(str(exc), file=sys.stderr)
            return 1
        except StoreUnavailable as exc:
            # Refuse to start rather than serve without a store: one clear line, no traceback.
            print(f"gateway: {exc.message}", file=sys.stderr)
            return 1
        except ListenError as exc:
            print(f"gateway: {exc}", file=sys.stderr)
            return 1
    try:
        cfg = config_mod.load(args.config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    return asyncio.run(_run_management(cfg, args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())


def _certificate_key(key: str | None, pem_file: str | None) -> str | None:
    """``--certificate`` as given, or the fingerprint key of ``--certificate-file``."""
    if pem_file is None:
        return key
    import hashlib
    import ssl

    with open(pem_file, encoding="ascii") as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return "sha256:" + hashlib.sha256(der).hexdigest()
