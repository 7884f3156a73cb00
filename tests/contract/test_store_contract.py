"""The Store contract: every backend gives the gateway the same answers.

Each test runs against a real SQLite file and a real PostgreSQL schema (fresh per test, dropped
afterwards). A behaviour the gateway relies on belongs here, not in one backend's own tests.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import gateway.features.oauth.records  # noqa: F401  (registers OAuth's tables, as the gateway does)
from gateway.core.errors import StoreUnavailable
from gateway.store import Membership, Store, TokenRecord, User, Workspace, open_store
from gateway.store.base import SECRETS, TOKENS, WORKSPACES, AuditEntry
from gateway.store.migrations import created_tables
from gateway.store.tables import NOT_COPIED, registered
from tests.support.stores import T0, fresh_postgres_schema

if TYPE_CHECKING:
    from gateway.store.postgres import PostgresStore


def token(tid: str, ws: str = "ws_a", **kw: object) -> TokenRecord:
    fields: dict[str, object] = {
        "id": tid,
        "name": f"name-{tid}",
        "kind": "api_key",
        "type_prefix": "gw_live_",
        "environment": "live",
        "visible_prefix": f"gw_live_{tid}"[:16],
        "scopes": frozenset({"items:read", "items:write"}),
        "workspace_id": ws,
        "user_id": None,
        "created_at": T0,
    }
    fields.update(kw)
    return TokenRecord(**fields)  # type: ignore[arg-type]


async def seed(store: Store) -> None:
    await store.create_workspace(Workspace("ws_a", "acme", "Acme", "free", T0))
    await store.create_workspace(Workspace("ws_b", "ws_a", "Slug-is-other-id", "pro", T0 + 1))
    await store.create_user(User("usr_1", "ann@example.com", "Ann", T0))
    await store.create_user(User("usr_2", "bob@example.com", None, T0 + 1))


async def test_reopening_applies_no_migration_twice(store_url: str, store: Store) -> None:
    await seed(store)
    again = open_store(store_url)
    await again.open()  # migrations already applied: must neither fail nor wipe anything
    try:
        assert [w.id for w in await again.list_workspaces()] == ["ws_a", "ws_b"]
    finally:
        await again.close()


async def test_workspaces(store: Store) -> None:
    await seed(store)
    assert await store.get_workspace("acme", "slug") == Workspace(
        "ws_a", "acme", "Acme", "free", T0
    )
    assert (await store.get_workspace("ws_a", "id")).slug == "acme"  # type: ignore[union-attr]
    # "any" prefers the id when a key is one workspace's id and another's slug
    assert (await store.get_workspace("ws_a", "any")).id == "ws_a"  # type: ignore[union-attr]
    assert (await store.get_workspace("acme", "any")).id == "ws_a"  # type: ignore[union-attr]
    assert await store.get_workspace("nope", "any") is None
    assert await store.get_workspace("acme", "id") is None
    assert [w.id for w in await store.list_workspaces()] == ["ws_a", "ws_b"]
    assert await store.set_workspace_plan("ws_a", "pro") is True
    assert await store.set_workspace_plan("missing", "pro") is False
    assert (await store.get_workspace("ws_a", "id")).plan == "pro"  # type: ignore[union-attr]
    assert await store.delete_workspace("ws_a", T0 + 5) is True
    assert await store.delete_workspace("ws_a", T0 + 6) is False  # already deleted
    assert (await store.get_workspace("ws_a", "id")).deleted_at == T0 + 5  # type: ignore[union-attr]


async def test_users_and_memberships(store: Store) -> None:
    await seed(store)
    assert await store.get_user("usr_1") == User("usr_1", "ann@example.com", "Ann", T0)
    assert (await store.get_user("bob@example.com")).id == "usr_2"  # type: ignore[union-attr]
    assert await store.get_user("nobody") is None
    assert [u.id for u in await store.list_users()] == ["usr_1", "usr_2"]

    await store.set_membership(Membership("usr_1", "ws_a", "member", T0))
    await store.set_membership(Membership("usr_2", "ws_a", "viewer", T0 + 1))
    await store.set_membership(Membership("usr_1", "ws_b", "owner", T0 + 2))
    # setting again changes the role and keeps one row
    await store.set_membership(Membership("usr_1", "ws_a", "owner", T0 + 3))
    m = await store.get_membership("usr_1", "ws_a")
    assert m is not None and m.role == "owner" and m.created_at == T0
    assert await store.get_membership("usr_2", "ws_b") is None
    assert [m.user_id for m in await store.list_memberships(workspace_id="ws_a")] == [
        "usr_1",
        "usr_2",
    ]
    assert [m.workspace_id for m in await store.list_memberships(user_id="usr_1")] == [
        "ws_a",
        "ws_b",
    ]
    assert len(await store.list_memberships()) == 3
    assert await store.remove_membership("usr_2", "ws_a") is True
    assert await store.remove_membership("usr_2", "ws_a") is False
    assert await store.get_membership("usr_2", "ws_a") is None


async def test_tokens_round_trip_every_field(store: Store) -> None:
    await seed(store)
    full = token(
        "tok_1",
        user_id="usr_1",
        expires_at=T0 + 100,
        allowed_domains=("app.example.com", "*.example.org"),
        created_by="cli",
        client_id="cli_x",
        grant_id="gr_y",
        kind="oauth_access",
    )
    await store.create_token(full, "hash-1")
    assert await store.find_token("hash-1") == (full, None)
    assert await store.get_token("tok_1") == full
    assert await store.find_token("hash-unknown") is None
    assert await store.get_token("tok_missing") is None


async def test_list_tokens_filters_and_order(store: Store) -> None:
    await seed(store)
    await store.create_token(token("tok_b", created_at=T0 + 2, user_id="usr_1"), "h-b")
    await store.create_token(token("tok_a", created_at=T0 + 2), "h-a")
    await store.create_token(token("tok_c", ws="ws_b", created_at=T0 + 1), "h-c")
    assert [t.id for t in await store.list_tokens()] == ["tok_c", "tok_a", "tok_b"]
    assert [t.id for t in await store.list_tokens(workspace_id="ws_a")] == ["tok_a", "tok_b"]
    assert [t.id for t in await store.list_tokens(user_id="usr_1")] == ["tok_b"]
    assert [t.id for t in await store.list_tokens(workspace_id="ws_b", user_id="usr_1")] == []


async def test_revoke_and_expiry(store: Store) -> None:
    await seed(store)
    await store.create_token(token("tok_1"), "h1")
    assert await store.revoke_token("tok_1", T0 + 10) is True
    assert await store.revoke_token("tok_1", T0 + 20) is False  # the first revocation stands
    found = await store.find_token("h1")
    assert found is not None and found[0].revoked_at == T0 + 10
    assert await store.revoke_token("tok_missing", T0) is False

    await store.create_token(token("tok_2"), "h2")
    assert await store.set_token_expiry("tok_2", T0 + 50) is True
    assert (await store.get_token("tok_2")).expires_at == T0 + 50  # type: ignore[union-attr]
    assert await store.set_token_expiry("tok_2", None) is True
    assert (await store.get_token("tok_2")).expires_at is None  # type: ignore[union-attr]
    assert await store.set_token_expiry("tok_missing", None) is False


async def test_rotation_keeps_the_earliest_cutoff(store: Store) -> None:
    await seed(store)
    await store.create_token(token("tok_1"), "h-old")
    assert await store.rotate_token("tok_1", "h-mid", "gw_live_midxxxxx", T0 + 100) is True
    assert await store.find_token("h-old") == (
        await store.get_token("tok_1"),
        T0 + 100,
    )
    found = await store.find_token("h-mid")
    assert found is not None and found[1] is None and found[0].visible_prefix == "gw_live_midxxxxx"
    # a second rotation with a later cutoff must not extend the first secret's grace
    assert await store.rotate_token("tok_1", "h-new", "gw_live_newxxxxx", T0 + 500) is True
    assert (await store.find_token("h-old"))[1] == T0 + 100  # type: ignore[index]
    assert (await store.find_token("h-mid"))[1] == T0 + 500  # type: ignore[index]
    assert (await store.find_token("h-new"))[1] is None  # type: ignore[index]
    await store.revoke_token("tok_1", T0 + 1)
    assert await store.rotate_token("tok_1", "h-x", "gw_live_xxxxxxxx", T0) is False
    assert await store.find_token("h-x") is None


async def test_usage_domains_and_counts(store: Store) -> None:
    await seed(store)
    await store.create_token(token("tok_1", allowed_domains=("a.example",)), "h1")
    await store.create_token(token("tok_2", allowed_domains=("b.example", "a.example")), "h2")
    await store.create_token(token("tok_3", allowed_domains=("gone.example",)), "h3")
    await store.create_token(token("tok_4", expires_at=T0 - 1), "h4")
    await store.revoke_token("tok_3", T0)
    assert await store.allowed_domains_in_use() == {"a.example", "b.example"}
    assert await store.count_tokens_by_state(T0) == {"revoked": 1, "expired": 1, "active": 2}

    await store.record_usage({"tok_1": T0 + 10, "tok_2": T0 + 5})
    await store.record_usage({"tok_1": T0 + 3})  # an older batch never moves it backwards
    await store.record_usage({})
    assert (await store.get_token("tok_1")).last_used_at == T0 + 10  # type: ignore[union-attr]
    assert (await store.get_token("tok_2")).last_used_at == T0 + 5  # type: ignore[union-attr]


async def test_every_decision_change_is_in_the_feed(store: Store) -> None:
    start = await store.latest_change()
    await seed(store)
    await store.create_token(token("tok_1"), "h1")
    await store.set_membership(Membership("usr_1", "ws_a", "member", T0))
    await store.remove_membership("usr_1", "ws_a")
    await store.revoke_token("tok_1", T0)
    await store.set_token_expiry("tok_1", T0)
    await store.rotate_token("tok_1", "h2", "p", T0)  # revoked: no change, nothing in the feed
    await store.delete_workspace("ws_b", T0)
    await store.set_workspace_plan("ws_a", "pro")
    changes = await store.changes_since(start)
    assert [(c.entity, c.entity_id) for c in changes] == [
        ("workspace", "ws_a"),
        ("workspace", "ws_b"),
        ("token", "tok_1"),
        ("membership", "usr_1:ws_a"),
        ("membership", "usr_1:ws_a"),
        ("token", "tok_1"),
        ("token", "tok_1"),
        ("workspace", "ws_b"),
        ("workspace", "ws_a"),
    ]
    seqs = [c.seq for c in changes]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert await store.latest_change() == seqs[-1]
    assert [c.seq for c in await store.changes_since(seqs[2], limit=2)] == seqs[3:5]
    assert await store.changes_since(seqs[-1]) == []


async def test_a_token_change_and_its_audit_event_commit_together(store: Store) -> None:
    """Issue 23: create, revoke and rotate write their audit event in the same transaction, so
    a change that commits has its event and one that does not has none (a SIGKILL between two
    transactions used to lose the event of an acknowledged change)."""
    await seed(store)
    ev = AuditEntry("token.create", T0, "usr_1", "10.0.0.1", "tok_1", "gw_live_tok_1", "ws_a")
    await store.create_token(token("tok_1"), "h1", audit=ev)
    assert await store.revoke_token("tok_1", T0 + 1, audit=replace(ev, action="token.revoke"))
    # nothing changed, so nothing is recorded
    assert not await store.revoke_token("tok_1", T0 + 2, audit=replace(ev, action="token.revoke"))
    await store.create_token(token("tok_2"), "h2")
    rotated = replace(ev, action="token.rotate", token_id="tok_2", visible_prefix="gw_live_new")
    assert await store.rotate_token("tok_2", "h3", "gw_live_new", T0 + 5, audit=rotated)
    events = list(reversed(await store.list_audit()))
    assert [(e.action, e.token_id) for e in events] == [
        ("token.create", "tok_1"),
        ("token.revoke", "tok_1"),
        ("token.rotate", "tok_2"),
    ]
    assert events[2].visible_prefix == "gw_live_new" and events[0].address == "10.0.0.1"
    # An event that cannot be written takes its change down with it.
    unwritable = replace(ev, action=None, token_id="tok_3")  # type: ignore[arg-type]  # action is NOT NULL
    with pytest.raises(StoreUnavailable):
        await store.create_token(token("tok_3"), "h4", audit=unwritable)
    assert await store.get_token("tok_3") is None and await store.find_token("h4") is None
    with pytest.raises(StoreUnavailable):
        await store.revoke_token("tok_2", T0 + 6, audit=unwritable)
    revoked = await store.get_token("tok_2")
    assert revoked is not None and revoked.revoked_at is None
    with pytest.raises(StoreUnavailable):
        await store.rotate_token("tok_2", "h5", "gw_live_x", T0 + 7, audit=unwritable)
    assert await store.find_token("h5") is None
    assert len(await store.list_audit()) == 3


async def test_audit_log(store: Store) -> None:
    for i, ws in enumerate(["ws_a", "ws_b", "ws_a"]):
        await store.add_audit(
            f"token.act{i}",
            at=T0 + i,
            actor="cli",
            address="127.0.0.1" if i else None,
            token_id=f"tok_{i}",
            visible_prefix="gw_live_abc",
            workspace_id=ws,
            detail="d" if i == 2 else None,
        )
    events = await store.list_audit()
    assert [e.action for e in events] == ["token.act2", "token.act1", "token.act0"]
    assert events[0].detail == "d" and events[2].address is None and events[1].at == T0 + 1
    assert [e.action for e in await store.list_audit(workspace_id="ws_a")] == [
        "token.act2",
        "token.act0",
    ]
    assert len(await store.list_audit(limit=1)) == 1


async def test_export_import_round_trip(store: Store, tmp_path: Path) -> None:
    await seed(store)
    await store.set_membership(Membership("usr_1", "ws_a", "member", T0))
    await store.create_token(token("tok_1", allowed_domains=("x.example",)), "h1")
    await store.rotate_token("tok_1", "h2", "gw_live_rotated1", T0 + 60)
    await store.add_audit(
        "token.create",
        at=T0,
        actor=None,
        address=None,
        token_id="tok_1",
        visible_prefix="gw_live_",
        workspace_id="ws_a",
    )
    dump = await store.export_all()
    assert len(dump.records(SECRETS)) == 2 and len(dump.records(TOKENS)) == 1

    target = open_store(f"sqlite:///{tmp_path}/copy.db")
    await target.open()
    try:
        await target.import_all(dump)
        assert await target.export_all() == dump
        assert await target.find_token("h1") == await store.find_token("h1")
        # importing into a store that already has data is refused, and changes nothing
        with pytest.raises(StoreUnavailable):
            await target.import_all(dump)
        assert await target.export_all() == dump
        # new audit events after an import get fresh ids
        await target.add_audit(
            "x",
            at=T0,
            actor=None,
            address=None,
            token_id=None,
            visible_prefix=None,
            workspace_id=None,
        )
        assert len({e.id for e in await target.list_audit()}) == 2
    finally:
        await target.close()


def test_every_table_the_migrations_create_is_copied_or_deliberately_not() -> None:
    # A feature table without a registered spec would silently stay behind in a move between
    # stores (and a dump refuses to run then). OAuth registers its four from its own module.
    for backend in ("sqlite", "postgres"):
        assert created_tables(backend) - NOT_COPIED == {spec.name for spec in registered()}
    assert "oauth_refresh_tokens" in {spec.name for spec in registered()}


async def test_a_dump_ignores_a_table_that_is_not_the_gateways(store: Store) -> None:
    # Another application's table in a shared schema is neither copied nor a reason to refuse.
    await seed(store)
    async with store.transaction() as tx:
        await tx.execute("CREATE TABLE someone_elses (id TEXT PRIMARY KEY)")
        await tx.execute(store.dialect.sql("INSERT INTO someone_elses VALUES ($1)"), "x")
    dump = await store.export_all()
    assert "someone_elses" not in dump.tables
    assert [w.id for w in dump.records(WORKSPACES)] == ["ws_a", "ws_b"]


async def test_a_feature_transaction_commits_with_its_changes_or_not_at_all(store: Store) -> None:
    """The public transaction API features (OAuth) write through: their rows, the tokens they
    issue and the change-feed entries commit together, and an error rolls all of it back."""
    await seed(store)
    sql = store.dialect.sql
    before = await store.latest_change()
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.insert_token(token("tok_x"), "hash-x")
            await tx.execute(sql("UPDATE workspaces SET plan = $1 WHERE id = $2"), "pro", "ws_a")
            raise RuntimeError("the feature fails after writing")
    assert await store.find_token("hash-x") is None
    assert await store.latest_change() == before
    assert await store.fetchrow(sql("SELECT plan FROM workspaces WHERE id = $1"), "ws_a") == (
        "free",
    )

    async with store.transaction() as tx:
        await tx.insert_token(token("tok_y"), "hash-y")
        changed = await tx.execute(
            sql("UPDATE workspaces SET plan = $1 WHERE id = $2"), "pro", "ws_a"
        )
        await tx.change("workspace", "ws_a")
        assert await tx.fetchrow(sql("SELECT plan FROM workspaces WHERE id = $1"), "ws_a") == (
            "pro",
        )
    assert changed == 1
    assert await store.find_token("hash-y") == (token("tok_y"), None)
    feed = [(c.entity, c.entity_id) for c in await store.changes_since(before)]
    assert feed == [("token", "tok_y"), ("workspace", "ws_a")]
    rows = await store.fetch(sql("SELECT id FROM workspaces WHERE plan = $1 ORDER BY id"), "pro")
    assert [tuple(r) for r in rows] == [("ws_a",), ("ws_b",)]  # ws_b was created on "pro"


async def test_a_closed_store_fails_closed(store: Store) -> None:
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.find_token("h")
    with pytest.raises(StoreUnavailable):
        await store.revoke_token("tok", T0)


async def test_postgres_notifies_listeners_of_changes() -> None:
    """PostgreSQL only (SQLite gateways poll the change feed): commits wake listeners at once."""
    from gateway.store.postgres import PostgresStore

    async with fresh_postgres_schema() as url:
        store = PostgresStore(url)
        await store.open()
        try:
            await _notify_round_trip(store)
        finally:
            await store.close()


async def _notify_round_trip(store: PostgresStore) -> None:
    woke = asyncio.Event()
    states: list[bool] = []
    listener = asyncio.create_task(store.listen(woke.set, states.append))
    try:
        await asyncio.wait_for(woke.wait(), 5)  # the catch-up wake-up after connecting
        assert states == [True]
        woke.clear()
        started = time.monotonic()
        await store.create_workspace(Workspace("ws_n", "n", "N", "free", T0))
        await asyncio.wait_for(woke.wait(), 1)
        assert time.monotonic() - started < 1
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)


async def test_a_nonce_is_used_once(store: Store) -> None:
    later = time.time() + 60
    assert await store.use_nonce("n1", later) is True
    assert await store.use_nonce("n1", later) is False  # a replayed sign-in link
    assert await store.use_nonce("n2", later) is True
    # An expired entry is forgotten; what it guarded is refused by its own expiry anyway.
    assert await store.use_nonce("old", time.time() - 1) is True
    assert await store.use_nonce("old", later) is True


async def test_sqlite_token_lookups_survive_a_failing_inline_connection(tmp_path: Path) -> None:
    # find_token reads on the event loop's thread through a plain sqlite3 connection; when that
    # one fails (busy, or anything else) the lookup must still be answered by the reader thread.
    from gateway.store.sqlite import SQLiteStore

    store = SQLiteStore(f"sqlite:///{tmp_path}/inline.db")
    await store.open()
    try:
        await seed(store)
        rec = token("tok_1")
        await store.create_token(rec, "hash-1")
        assert await store.find_token("hash-1") == (rec, None)  # the inline connection
        assert store._inline is not None
        store._inline.close()  # every use now raises sqlite3.ProgrammingError
        assert await store.find_token("hash-1") == (rec, None)  # answered by the reader
        assert await store.find_token("hash-unknown") is None
    finally:
        await store.close()
