"""The embedded default store: one SQLite file in WAL mode through aiosqlite.

WAL lets the CLI (another process) write while gateways read. Every write that can change a decision
appends to ``changes`` in the same transaction. ``sqlite3`` errors become ``StoreUnavailable`` at
the edge (:mod:`~gateway.store.sqlite.connection`), and nowhere else.

:class:`SQLiteStore` is assembled from one class per job, each a subclass of the connection class,
so every query runs under the one connection and error discipline (the writer under ``_tx``, the
reader, the inline lookup connection)::

    connection.py   the file, its three connections, migrations; sqlite errors become StoreUnavailable
    transaction.py  the public transaction API; the rows a write appends (change, token, audit)
    changes.py      the change feed reads (SQLite cannot push: the feed's resync finds changes)
    records.py      workspaces, users, memberships
    tokens.py       tokens (the hot-path lookup), secrets, nonces, usage
    audit.py        the audit log
    transfer.py     dump and load for ``gateway migrate-store``

Features' tables are not here: they write through :meth:`SQLiteStore.transaction` and are copied
by :mod:`gateway.store.tables`.
"""

from __future__ import annotations

from gateway.store.sqlite.audit import AuditQueries
from gateway.store.sqlite.changes import ChangeReads
from gateway.store.sqlite.records import RecordQueries
from gateway.store.sqlite.tokens import TokenQueries
from gateway.store.sqlite.transaction import TransactionAPI
from gateway.store.sqlite.transfer import Transfer

__all__ = ["SQLiteStore"]


class SQLiteStore(TransactionAPI, TokenQueries, RecordQueries, ChangeReads, AuditQueries, Transfer):
    """:class:`gateway.store.Store` on a SQLite file."""
