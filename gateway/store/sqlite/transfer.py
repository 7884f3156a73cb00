"""The SQLite store's dump and load (``gateway migrate-store``): every registered table, copied
by :mod:`gateway.store.tables` in one consistent snapshot or one transaction."""

from __future__ import annotations

import sqlite3

from gateway.core.errors import StoreUnavailable
from gateway.store.base import StoreDump
from gateway.store.sqlite.connection import SQLiteConnection
from gateway.store.sqlite.transaction import ConnectionQueries, write_change
from gateway.store.tables import dump_tables, load_tables

__all__ = ["Transfer"]


class Transfer(SQLiteConnection):
    """``export_all`` and ``import_all`` of :class:`~gateway.store.base.Store`."""

    async def export_all(self) -> StoreDump:
        # One read transaction on the reader, where the reads below run: a consistent snapshot
        # while gateways keep writing (WAL). (Not on the writer: a BEGIN there would neither
        # cover those reads nor respect the write lock.)
        db = self._read_conn
        try:
            await db.execute("BEGIN")
            try:
                return await dump_tables(ConnectionQueries(db))
            finally:
                await db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreUnavailable(reason="store_read") from exc

    async def import_all(self, dump: StoreDump) -> None:
        async with self._tx() as db:
            await load_tables(ConnectionQueries(db), dump)
            # Running gateways (if any) drop whatever they cached about the copied data.
            await write_change(db, "store", "import")
