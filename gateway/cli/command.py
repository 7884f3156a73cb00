"""What a command module builds on: the parser it registers into and the management runner.

A command module exposes ``register(sub)``: it adds its parsers to ``sub`` and binds each to the
function that runs it with ``set_defaults(func=…)``; ``func`` takes the parsed arguments and returns
the exit code. Management commands (those that read or change the store) are written as
``async (ctx, args) -> (json_data, text)`` and wrapped by :func:`management`, which loads the config,
opens the store, prints the result (:mod:`gateway.cli.output`) and turns a :class:`GatewayError` into
its one error line and exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gateway import config as config_mod
from gateway.cli.output import emit, report_error
from gateway.config import Config, ConfigError
from gateway.core.errors import GatewayError
from gateway.management.audit import Actor
from gateway.management.services import Services
from gateway.store import Store, open_store

__all__ = ["Context", "Output", "Run", "Subcommands", "action", "group", "management"]

Run = Callable[[argparse.Namespace], int]
"""What ``set_defaults(func=…)`` binds: the parsed arguments in, the exit code out."""

Output = tuple[object, str]
"""A management command's result: what ``--json`` prints, and the text printed otherwise."""


class Subcommands(Protocol):
    """The object ``add_subparsers()`` returns (argparse does not name its type publicly)."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


def group(sub: Subcommands, name: str, help: str) -> Subcommands:
    """``gateway NAME ACTION …``: a command whose actions are subcommands (``args.action``)."""
    actions: Subcommands = sub.add_parser(name, help=help).add_subparsers(
        dest="action", required=True
    )
    return actions


@dataclass(frozen=True, slots=True)
class Context:
    """What a management command works with; the CLI acts as the operator (actor ``cli``)."""

    config: Config
    store: Store
    services: Services
    actor: Actor


Handler = Callable[[Context, argparse.Namespace], Awaitable[Output]]


def action(actions: Subcommands, name: str, handler: Handler, help: str) -> argparse.ArgumentParser:
    """``gateway GROUP NAME``, run by ``handler`` as a management command; add its arguments."""
    parser = actions.add_parser(name, help=help)
    parser.set_defaults(func=management(handler))
    return parser


def management(handler: Handler) -> Run:
    """``handler`` as a command: config loaded from ``--config``, store opened and closed."""

    def run(args: argparse.Namespace) -> int:
        try:
            cfg = config_mod.load(args.config)
        except ConfigError as exc:
            print(str(exc), file=sys.stderr)
            return 1
        return asyncio.run(_run(handler, cfg, args))

    return run


async def _run(handler: Handler, cfg: Config, args: argparse.Namespace) -> int:
    store = open_store(cfg.store)
    try:
        await store.open()
    except GatewayError as err:  # e.g. PostgreSQL down: one line, as `serve` says it, no traceback
        report_error(args, err)
        return 1
    ctx = Context(cfg, store, Services(store, cfg), Actor(id="cli", address=None))
    try:
        data, text = await handler(ctx, args)
        emit(args, data, text)
        return 0
    except GatewayError as err:
        report_error(args, err)
        return 1
    finally:
        await store.close()
