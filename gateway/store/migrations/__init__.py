"""Versioned schema migrations, one folder per backend, applied in file-name order."""

from __future__ import annotations

import re
from importlib import resources

__all__ = ["created_tables", "migrations"]

_CREATE_TABLE = re.compile(r"\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.IGNORECASE)


def migrations(backend: str) -> list[tuple[int, str]]:
    """``(version, sql)`` for each shipped migration of ``backend``, in order."""
    folder = resources.files("gateway.store.migrations").joinpath(backend)
    out = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql"):
            out.append((int(name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    versions = [v for v, _ in out]
    if len(versions) != len(set(versions)):
        # Two branches each adding "0002_…" would otherwise apply one and skip the other forever.
        raise RuntimeError(f"duplicate {backend} migration numbers: {sorted(versions)}")
    return sorted(out)


def created_tables(backend: str) -> frozenset[str]:
    """The tables the shipped migrations of ``backend`` create."""
    return frozenset(t for _, sql in migrations(backend) for t in _CREATE_TABLE.findall(sql))
