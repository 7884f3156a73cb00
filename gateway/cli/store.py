"""``gateway migrate-store``: copy a whole store (e.g. SQLite to PostgreSQL) into an empty one.

It needs no config file: both stores are named on the command line (or by ``GATEWAY_MIGRATE_FROM``
and ``GATEWAY_MIGRATE_TO``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from gateway.cli.command import Subcommands
from gateway.cli.output import emit
from gateway.core.errors import GatewayError
from gateway.store import open_store

__all__ = ["register"]


def register(sub: Subcommands) -> None:
    ms = sub.add_parser(
        "migrate-store",
        help="copy every workspace, user, membership, token and audit event to another store",
        description="Copy a whole store (e.g. SQLite to PostgreSQL) in one transaction on the "
        "target, which must be empty. Token hashes are copied as they are: keep the same pepper. "
        "Stop writes (or the gateways) on the source while it runs.",
    )
    for flag, dest, var, example in (
        ("--from", "source", "GATEWAY_MIGRATE_FROM", "sqlite:///gateway.db"),
        ("--to", "target", "GATEWAY_MIGRATE_TO", "postgresql://user@host/db"),
    ):
        ms.add_argument(
            flag,
            dest=dest,
            required=os.environ.get(var) is None,
            help=f"{dest} store URL, e.g. {example} (env {var})",
            default=os.environ.get(var),
        )
    ms.set_defaults(func=migrate_store)


def migrate_store(args: argparse.Namespace) -> int:
    src_path = args.source.removeprefix("sqlite:///")
    if args.source.startswith("sqlite:///") and not os.path.exists(src_path):
        # Opening would create an empty database and "copy" nothing: almost surely a typo.
        print(f"gateway: migrate-store: no SQLite store at {src_path}", file=sys.stderr)
        return 1
    return asyncio.run(_migrate(args))


async def _migrate(args: argparse.Namespace) -> int:
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
    counts = dump.counts()  # per registered table (gateway.store.tables), by its label
    emit(
        args,
        counts,
        "copied " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items()),
    )
    return 0
