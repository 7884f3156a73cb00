"""The PostgreSQL store's dump and load (``gateway migrate-store``): every registered table, copied
by :mod:`gateway.store.tables` in one consistent snapshot or one transaction."""

from __future__ import annotations

import asyncpg

from gateway.store.base import StoreDump
from gateway.store.postgres.connection import PostgresConnection
from gateway.store.postgres.transaction import ConnectionQueries, write_change
from gateway.store.tables import dump_tables, load_tables

__all__ = ["Transfer"]


class Transfer(PostgresConnection):
    """``export_all`` and ``import_all`` of :class:`~gateway.store.base.Store`."""

    async def export_all(self) -> StoreDump:
        async def read(c: asyncpg.Connection) -> StoreDump:
            # One REPEATABLE READ snapshot, so the dump is consistent while gateways keep writing.
            async with c.transaction(isolation="repeatable_read", readonly=True):
                return await dump_tables(ConnectionQueries(c))

        return await self._read(read)

    async def import_all(self, dump: StoreDump) -> None:
        async with self._tx() as c:
            await load_tables(ConnectionQueries(c), dump)
            # Running gateways (if any) drop whatever they cached about the copied data.
            await write_change(c, "store", "import")
