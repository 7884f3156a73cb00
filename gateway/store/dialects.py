"""The two SQL dialects the store speaks, side by side (:class:`~gateway.store.tables.Dialect`).

Kept apart from the backends so that code written for one dialect (a feature's storage, the
table registry) can name it without importing the database driver.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any, Literal

from gateway.store.tables import Kind, Queries, TableSpec

__all__ = ["POSTGRES", "SQLITE", "PostgresDialect", "SQLiteDialect"]


@functools.lru_cache(maxsize=4096)
def json_set(raw: str) -> frozenset[str]:
    """A JSON list column as a frozenset. Many tokens share the same scopes, so the parsed value
    is memoized (it is immutable); a cache-miss lookup then skips json.loads."""
    return frozenset(json.loads(raw))


@functools.lru_cache(maxsize=256)
def _numbered(text: str) -> str:
    """``$N`` placeholders as SQLite's ``?N`` (the same numbered-argument meaning)."""
    return re.sub(r"\$(\d+)", r"?\1", text)


class SQLiteDialect:
    """``?N`` placeholders; string collections as JSON text; text sorts by bytes already."""

    name = "sqlite"

    def sql(self, text: str) -> str:
        return _numbered(text)

    def row_lock(self, mode: Literal["UPDATE", "SHARE"]) -> str:
        return ""

    def encode(self, kind: Kind, value: Any) -> Any:
        if kind == "set":
            return json.dumps(sorted(value))
        if kind == "list":
            return json.dumps(list(value))
        return value

    def decode(self, kind: Kind, value: Any) -> Any:
        if kind == "set":
            return json_set(value)
        if kind == "list":
            return () if value == "[]" else tuple(json.loads(value))
        return value

    def text_order(self, column: str) -> str:
        return column

    async def after_load(self, q: Queries, spec: TableSpec[Any]) -> None:
        return None  # an INTEGER PRIMARY KEY continues after the largest id by itself


class PostgresDialect:
    """``$N`` placeholders; string collections as ``text[]``; byte order needs ``COLLATE "C"``."""

    name = "postgres"

    def sql(self, text: str) -> str:
        return text

    def row_lock(self, mode: Literal["UPDATE", "SHARE"]) -> str:
        return f" FOR {mode}"

    def encode(self, kind: Kind, value: Any) -> Any:
        if kind == "set":
            return sorted(value)
        if kind == "list":
            return list(value)
        return value

    def decode(self, kind: Kind, value: Any) -> Any:
        if kind == "set":
            return frozenset(value)
        if kind == "list":
            return tuple(value)
        return value

    def text_order(self, column: str) -> str:
        # Byte order, as SQLite sorts, whatever the database's collation: migrate-store compares
        # a copy with its source record by record, in either direction.
        return f'{column} COLLATE "C"'

    async def after_load(self, q: Queries, spec: TableSpec[Any]) -> None:
        if spec.serial is not None:
            # Explicit ids were inserted: move the sequence past them.
            await q.execute(
                f"SELECT setval(pg_get_serial_sequence('{spec.name}', '{spec.serial}'), "
                f"GREATEST((SELECT MAX({spec.serial}) FROM {spec.name}), 1))"
            )


SQLITE = SQLiteDialect()
POSTGRES = PostgresDialect()
