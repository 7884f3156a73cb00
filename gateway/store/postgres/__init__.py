"""The shared store for many instances: PostgreSQL through an asyncpg connection pool.

Selected by ``postgresql://`` (or ``postgres://``) store URLs. A ``schema=NAME`` query parameter
puts the gateway's tables in that schema (created if missing), so several deployments, or test
runs, can share one database. Semantics match :mod:`gateway.store.sqlite` exactly; the contract
suite (tests/contract) holds both to the same assertions.

:class:`PostgresStore` is assembled from one class per job, each a subclass of the connection
class, so every query runs under the one connection and error discipline (``_read``, ``_tx``)::

    connection.py   the pool, timeouts, migrations; every asyncpg error becomes StoreUnavailable
    transaction.py  the public transaction API; the rows a write appends (change, token, audit)
    listen.py       LISTEN/NOTIFY: the push channel that wakes the change feed
    changes.py      the change feed reads
    records.py      workspaces, users, memberships
    tokens.py       tokens (the hot-path lookup), secrets, nonces, usage
    audit.py        the audit log
    transfer.py     dump and load for ``gateway migrate-store``

Features' tables are not here: they write through :meth:`PostgresStore.transaction` and are copied
by :mod:`gateway.store.tables`.
"""

from __future__ import annotations

from gateway.store.postgres.audit import AuditQueries
from gateway.store.postgres.changes import ChangeReads
from gateway.store.postgres.connection import split_url
from gateway.store.postgres.listen import ChangeListener
from gateway.store.postgres.records import RecordQueries
from gateway.store.postgres.tokens import TokenQueries
from gateway.store.postgres.transaction import TransactionAPI
from gateway.store.postgres.transfer import Transfer

__all__ = ["PostgresStore", "split_url"]


class PostgresStore(
    TransactionAPI,
    ChangeListener,
    TokenQueries,
    RecordQueries,
    ChangeReads,
    AuditQueries,
    Transfer,
):
    """:class:`gateway.store.Store` on PostgreSQL."""
