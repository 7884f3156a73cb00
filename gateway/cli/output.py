"""How every ``gateway`` command prints: one JSON document with ``--json``, text for people otherwise.

Tables, cells and the error line live here so each command module prints the same way.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence

from gateway.core.errors import GatewayError

__all__ = ["cell", "emit", "report_error", "table"]


def emit(args: argparse.Namespace, data: object, text: str) -> None:
    """``data`` as indented JSON with ``--json``, else ``text``, on stdout."""
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(text)


def report_error(args: argparse.Namespace, err: GatewayError) -> None:
    """A refused command's one line on stderr: ``{"error": {code, message}}`` with ``--json``."""
    if args.json:
        print(json.dumps({"error": {"code": err.code, "message": err.message}}), file=sys.stderr)
    else:
        print(f"gateway: {err.message}", file=sys.stderr)


def cell(value: object) -> str:
    """A value as a person reads it: lists (scopes, domains) space-separated, nothing as blank."""
    if isinstance(value, list | tuple | set | frozenset):
        return " ".join(str(v) for v in value)
    return "" if value is None else str(value)


def table(rows: Sequence[Mapping[str, object]], cols: Sequence[str]) -> str:
    """``rows`` as aligned columns under upper-case headers; ``(none)`` when there are none."""
    if not rows:
        return "(none)"
    widths = {c: max(len(c), *(len(cell(r.get(c))) for r in rows)) for c in cols}
    head = "  ".join(c.upper().ljust(widths[c]) for c in cols)
    body = ["  ".join(cell(r.get(c)).ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join([head, *body])
