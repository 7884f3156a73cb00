"""``gateway check``: validate the config, list every problem and warning, exit 1 on an error;
``gateway config-schema``: the JSON Schema of the config, for editors."""

from __future__ import annotations

import argparse
import json
import re
import sys

import yaml

from gateway import config as config_mod
from gateway.cli.command import Subcommands
from gateway.config import Config, ConfigError
from gateway.config.schema import render
from gateway.extensions import load_all

__all__ = ["register"]


def register(sub: Subcommands) -> None:
    sub.add_parser("check", help="validate the config; exit 1 on any error").set_defaults(
        func=check
    )
    sub.add_parser(
        "config-schema", help="print the JSON Schema of gateway.yaml (for editors)"
    ).set_defaults(func=config_schema)


def config_schema(args: argparse.Namespace) -> int:
    """``gateway config-schema``: the schema config/gateway.schema.json holds; needs no config."""
    sys.stdout.write(render())
    return 0


def check(args: argparse.Namespace) -> int:
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
    # Here, not at the top: the handler registry pulls in aiohttp.web and the proxy (~100 ms) that
    # every other command (and ``gateway --help``) would pay for at start.
    from gateway.pipeline.hooks import handlers_of

    handlers = handlers_of(load_all())  # the registry a Gateway puts in its hooks
    missing = [r for r in cfg.routes if r.handler and r.handler not in handlers]
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
        print(json.dumps({"ok": ok, "routes": len(cfg.routes), "warnings": warnings}))
    elif ok:
        print(f"{cfg.source}: OK ({len(cfg.routes)} routes, {len(warnings)} warnings)")
    return 0 if ok else 1


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
