"""``gateway serve``: run the gateway until SIGTERM; a config, store or port problem is one line."""

from __future__ import annotations

import argparse
import os
import sys

from gateway.cli.command import Subcommands
from gateway.config import ConfigError
from gateway.core.errors import StoreUnavailable
from gateway.edge.listen import ListenError

__all__ = ["register"]


def register(sub: Subcommands) -> None:
    s = sub.add_parser("serve", help="run the gateway")
    s.add_argument(
        "--listen",
        default=os.environ.get("GATEWAY_LISTEN"),
        help="proxy HOST:PORT (env GATEWAY_LISTEN; overrides the config)",
    )
    s.add_argument(
        "--workers",
        type=int,
        # A string default goes through ``type``: a bad GATEWAY_WORKERS is a usage error.
        default=os.environ.get("GATEWAY_WORKERS", "1"),
        help="worker processes sharing the port (env GATEWAY_WORKERS; default 1)",
    )
    s.set_defaults(func=serve)


def serve(args: argparse.Namespace) -> int:
    # Here, not at the top: the server loads the whole gateway (~200 ms) that every other command
    # (and ``gateway --help``) would pay for at start.
    from gateway.process import server

    try:
        return server.serve(args.config, args.listen, args.workers)
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
