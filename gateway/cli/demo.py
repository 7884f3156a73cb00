"""``gateway demo``: the quick start (demo upstream, SQLite store, minted tokens, then serve)."""

from __future__ import annotations

import argparse

from gateway.cli.command import Subcommands

__all__ = ["register"]


def register(sub: Subcommands) -> None:
    d = sub.add_parser(
        "demo", help="quick start: demo upstream, SQLite store, minted tokens, then serve"
    )
    d.add_argument(
        "--port",
        type=int,
        default=None,
        help="proxy port (default: the config's; gateway.yaml reads GATEWAY_PORT)",
    )
    d.add_argument("--upstream-port", type=int, default=9000, help="demo upstream port")
    d.set_defaults(func=demo)


def demo(args: argparse.Namespace) -> int:
    # Here, not at the top: the demo loads the whole gateway (~250 ms) that every other command
    # (and ``gateway --help``) would pay for at start.
    from gateway.process.demo import run_demo

    return run_demo(args.config, args.port, args.upstream_port)
