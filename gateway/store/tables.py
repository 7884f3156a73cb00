"""The table registry: every table ``gateway migrate-store`` copies, declared once.

A :class:`TableSpec` names a table, the record a row becomes (its columns are that dataclass's
fields, in order: :func:`table`, so a field added to a record is copied with no second list to
update) and the key a dump is sorted by. The core tables are declared next to
their records in :mod:`gateway.store.base`; a feature that keeps its own tables (OAuth, in
:mod:`gateway.features.oauth.records`) declares them in its own module and adds them with :func:`register`.
:func:`dump_tables` and :func:`load_tables` iterate the registry in registration order (parents
before the rows that reference them: the core tables register when :mod:`gateway.store` is first
imported, before any feature can), on either backend, through the small :class:`Queries` interface
each backend's transactions provide. A table the gateway's migrations create that no spec covers
makes a dump fail rather than silently stay behind.

Nothing here knows a backend: the differences (placeholders, array columns, byte-order sorting,
identity sequences, row locks) are a :class:`Dialect`'s (:mod:`gateway.store.dialects`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Generic, Literal, Protocol, TypeVar

from gateway.core.errors import StoreUnavailable
from gateway.store.migrations import created_tables

__all__ = [
    "NOT_COPIED",
    "Column",
    "Dialect",
    "Kind",
    "Queries",
    "Row",
    "StoreDump",
    "TableSpec",
    "dump_tables",
    "insert_sql",
    "load_tables",
    "register",
    "registered",
    "table",
]

R = TypeVar("R")
Row = Sequence[Any]
# How a field is stored: as is, or a collection of strings (JSON text on SQLite, text[] on
# PostgreSQL) read back as a frozenset ("set") or a tuple that keeps its order ("list").
Kind = Literal["value", "set", "list"]

# Tables deliberately left out of a copy: migration bookkeeping (the target applies its own) and the
# change feed (it only tells running gateways what to drop from their caches; an import appends
# one "store:import" entry instead).
NOT_COPIED = frozenset({"schema_migrations", "changes"})


class Dialect(Protocol):
    """What differs between the backends' SQL, for code written once for both."""

    @property
    def name(self) -> str:
        """``"sqlite"`` or ``"postgres"`` (also the folder of its migrations)."""
        ...

    def sql(self, text: str) -> str:
        """``text``, written with ``$N`` placeholders, in this dialect."""
        ...

    def row_lock(self, mode: Literal["UPDATE", "SHARE"]) -> str:
        """A ``FOR UPDATE``/``FOR SHARE`` clause where rows can be locked (empty on SQLite, whose
        write transactions run one at a time anyway)."""
        ...

    def encode(self, kind: Kind, value: Any) -> Any: ...
    def decode(self, kind: Kind, value: Any) -> Any: ...

    def text_order(self, column: str) -> str:
        """An ORDER BY term sorting a text column by byte value on every backend."""
        ...

    async def after_load(self, q: Queries, spec: TableSpec[Any]) -> None:
        """Whatever a table needs after rows with explicit ids were loaded into it."""
        ...


class Queries(Protocol):
    """Statements in a store's dialect on one connection (a transaction or a read snapshot)."""

    @property
    def dialect(self) -> Dialect: ...

    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...
    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...
    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: Kind = "value"


@dataclass(frozen=True, slots=True)
class TableSpec(Generic[R]):
    """One table: each row becomes a ``record``; the columns are its fields, in order."""

    name: str
    record: type[R]
    columns: tuple[Column, ...]
    order_by: tuple[str, ...]  # text keys (byte order), unless the column is ``serial``
    label: str  # what migrate-store calls it in its counts ("oauth_apps")
    serial: str | None = None  # a column numbered by the database (its sequence follows a load)

    @property
    def select_list(self) -> str:
        return ", ".join(c.name for c in self.columns)

    def decode(self, row: Row, dialect: Dialect) -> R:
        values = [dialect.decode(c.kind, v) for c, v in zip(self.columns, row, strict=True)]
        return self.record(*values)

    def encode(self, record: R, dialect: Dialect) -> tuple[Any, ...]:
        return tuple(dialect.encode(c.kind, getattr(record, c.name)) for c in self.columns)


def table(
    name: str,
    record: type[R],
    *,
    order_by: tuple[str, ...],
    label: str,
    sets: Iterable[str] = (),
    lists: Iterable[str] = (),
    serial: str | None = None,
) -> TableSpec[R]:
    """The spec of a table whose columns are the fields of the dataclass ``record``, in order;
    the fields named in ``sets``/``lists`` hold string collections."""
    names = [f.name for f in fields(record)]  # type: ignore[arg-type]
    kinds: dict[str, Kind] = {**dict.fromkeys(sets, "set"), **dict.fromkeys(lists, "list")}
    if not set(kinds) <= set(names) or not set(order_by) <= set(names):
        raise RuntimeError(f"table {name}: {sorted(kinds)} or {order_by} are not all fields")
    columns = tuple(Column(n, kinds.get(n, "value")) for n in names)
    return TableSpec(name, record, columns, order_by, label, serial)


def insert_sql(spec: TableSpec[Any], dialect: Dialect) -> str:
    """``INSERT`` of one row of ``spec`` (arguments: :meth:`TableSpec.encode`)."""
    params = ", ".join(f"${i}" for i in range(1, len(spec.columns) + 1))
    return dialect.sql(f"INSERT INTO {spec.name} ({spec.select_list}) VALUES ({params})")


_REGISTRY: dict[str, TableSpec[Any]] = {}


def register(spec: TableSpec[R]) -> TableSpec[R]:
    """Add ``spec`` to what migrate-store copies (after every table registered before it)."""
    if spec.name in _REGISTRY:
        raise RuntimeError(f"table {spec.name} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def registered() -> tuple[TableSpec[Any], ...]:
    return tuple(_REGISTRY.values())


@dataclass(slots=True)
class StoreDump:
    """Every row a store holds except :data:`NOT_COPIED`, by table name (secrets as digests)."""

    tables: dict[str, list[Any]] = field(default_factory=dict)

    def records(self, spec: TableSpec[R]) -> list[R]:
        return self.tables.get(spec.name, [])

    def counts(self) -> dict[str, int]:
        """Rows per table, by each table's label, in registry order."""
        return {s.label: len(self.tables.get(s.name, [])) for s in registered()}


async def dump_tables(q: Queries) -> StoreDump:
    """Every registered table's rows, read on ``q`` (which the caller holds as one snapshot).

    A table the gateway's migrations create that no spec covers would be silently left behind:
    refused instead (the feature owning it was not imported, or forgot to register it). Tables
    the migrations do not know (another application's, in a shared schema) are none of ours.
    """
    specs = registered()
    unknown = sorted(created_tables(q.dialect.name) - NOT_COPIED - {s.name for s in specs})
    if unknown:
        raise StoreUnavailable(
            f"no table spec registered for {', '.join(unknown)}; a copy would lose them",
            reason="unregistered_table",
        )
    out = StoreDump()
    for spec in specs:
        order = ", ".join(c if c == spec.serial else q.dialect.text_order(c) for c in spec.order_by)
        rows = await q.fetch(f"SELECT {spec.select_list} FROM {spec.name} ORDER BY {order}")
        out.tables[spec.name] = [spec.decode(r, q.dialect) for r in rows]
    return out


async def load_tables(q: Queries, data: StoreDump) -> None:
    """Insert ``data`` on ``q`` (inside the caller's transaction), refusing a store with rows:
    a copy never merges into live data."""
    specs = registered()
    for spec in specs:
        if (await q.fetch(f"SELECT EXISTS (SELECT 1 FROM {spec.name})"))[0][0]:
            raise StoreUnavailable(
                f"the target store is not empty ({spec.name} has rows)", reason="not_empty"
            )
    for spec in specs:
        sql = insert_sql(spec, q.dialect)
        await q.executemany(sql, [spec.encode(r, q.dialect) for r in data.records(spec)])
        await q.dialect.after_load(q, spec)
