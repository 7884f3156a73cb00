"""The ``gateway`` command: serve, check, and management of workspaces, users, members and tokens.

Every command takes ``--config`` (default ``$GATEWAY_CONFIG``, then ``./gateway.yaml``) and ``--json``
for machine-readable output. Management commands call :mod:`gateway.management.services`, the same layer the
admin API uses. A plaintext token is printed only by ``token create`` and ``token rotate``.

Each command group is one module of this package with a ``register(sub)`` function that adds its
parsers and binds each to the function that runs it (``set_defaults(func=…)``, see
:mod:`gateway.cli.command`); :data:`COMMANDS` lists them in the order ``--help`` shows them.
Adding a command is one module and one entry there.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from types import ModuleType

from gateway import __version__
from gateway.cli import audit, check, demo, member, oauth, serve, store, token, user, workspace
from gateway.cli.command import Run

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS: tuple[ModuleType, ...] = (
    serve,
    check,
    demo,
    workspace,
    user,
    member,
    token,
    store,
    audit,
    oauth,
)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: the global options, then every module of :data:`COMMANDS`."""
    p = argparse.ArgumentParser(
        prog="gateway", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    p.add_argument(
        "--config",
        default=os.environ.get("GATEWAY_CONFIG", "gateway.yaml"),
        help="config file (env GATEWAY_CONFIG; default ./gateway.yaml)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable JSON output")
    p.add_argument("--version", action="version", version=f"gateway {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: the process's) and run the chosen command; its exit code."""
    args = build_parser().parse_args(argv)
    run: Run = args.func
    return run(args)
