"""The OAuthStore contract: the SQLite and PostgreSQL OAuth stores give the same answers.

Parametrized like test_store_contract.py: a real SQLite file and a fresh PostgreSQL schema (dropped
afterwards; without GATEWAY_TEST_POSTGRES the PostgreSQL half skips locally and fails in CI). The
concurrency tests matter most on PostgreSQL, where transactions really run side by side: a code is
first-used once, a refresh token rotates once, and a revocation racing an issuance never leaves a
live token behind.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.core.errors import StoreUnavailable
from gateway.features.oauth.records import CLIENTS, CODES, GRANTS, REFRESH_TOKENS
from gateway.features.oauth.store import (
    ClientRecord,
    CodeRecord,
    GrantRecord,
    OAuthStore,
    RefreshRecord,
    oauth_store_for,
)
from gateway.store import Store, TokenRecord, User, Workspace, open_store
from gateway.store.base import NONCES
from tests.support.stores import T0, fresh_postgres_schema


@pytest.fixture
async def store(store: Store) -> Store:
    """The shared fixture's store (tests/contract/conftest.py), with two workspaces and users."""
    s = store
    await s.create_workspace(Workspace("ws_a", "acme", "Acme", "free", T0))
    await s.create_workspace(Workspace("ws_b", "beta", "Beta", "free", T0))
    await s.create_user(User("usr_1", "ann@example.com", "Ann", T0))
    await s.create_user(User("usr_2", "bob@example.com", None, T0))
    return s


@pytest.fixture
def oauth(store: Store) -> OAuthStore:
    return oauth_store_for(store)


def client(cid: str = "cl_1", ws: str | None = "ws_a", **kw: object) -> ClientRecord:
    fields: dict[str, object] = {
        "id": cid,
        "name": f"App {cid}",
        # order matters to the consent page and must survive the round trip
        "redirect_uris": ("https://b.example/cb", "https://a.example/cb"),
        "scopes": frozenset({"items:read", "items:write"}),
        "created_at": T0,
        "workspace_id": ws,
        "secret_hash": f"secret-digest-{cid}",
    }
    fields.update(kw)
    return ClientRecord(**fields)  # type: ignore[arg-type]


def grant(gid: str = "gr_1", cid: str = "cl_1", **kw: object) -> GrantRecord:
    fields: dict[str, object] = {
        "id": gid,
        "client_id": cid,
        "user_id": "usr_1",
        "workspace_id": "ws_a",
        "scopes": frozenset({"items:read"}),
        "created_at": T0,
    }
    fields.update(kw)
    return GrantRecord(**fields)  # type: ignore[arg-type]


def code(gid: str = "gr_1", cid: str = "cl_1", h: str | None = None) -> CodeRecord:
    return CodeRecord(
        hash=h or f"code-digest-{gid}",
        grant_id=gid,
        client_id=cid,
        redirect_uri="https://a.example/cb",
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        code_challenge_method="S256",
        created_at=T0,
        expires_at=T0 + 600,
    )


def access(tid: str, gid: str = "gr_1", cid: str = "cl_1") -> TokenRecord:
    return TokenRecord(
        id=tid,
        name=f"oauth:{cid}",
        kind="oauth_access",
        type_prefix="gwo_",
        environment="live",
        visible_prefix=f"gwo_{tid}"[:16],
        scopes=frozenset({"items:read"}),
        workspace_id="ws_a",
        user_id="usr_1",
        created_at=T0,
        expires_at=T0 + 3600,
        client_id=cid,
        grant_id=gid,
    )


def refresh(rid: str, tid: str, gid: str = "gr_1", cid: str = "cl_1") -> RefreshRecord:
    return RefreshRecord(
        id=rid,
        hash=f"refresh-digest-{rid}",
        grant_id=gid,
        client_id=cid,
        access_token_id=tid,
        created_at=T0,
        expires_at=T0 + 86400,
    )


async def issue(
    oauth: OAuthStore,
    n: int,
    *,
    gid: str = "gr_1",
    rotate_from: str | None = None,
    supersede: str | None = None,
    at: float = T0 + 10,
) -> bool:
    """Issue access ``at_<n>`` (secret ``access-digest-<n>``) with refresh ``rt_<n>``."""
    return await oauth.issue(
        grant_id=gid,
        access=access(f"at_{n}", gid),
        access_hash=f"access-digest-{n}",
        refresh=refresh(f"rt_{n}", f"at_{n}", gid),
        rotate_from=rotate_from,
        supersede=supersede,
        at=at,
    )


async def active(store: Store, n: int) -> bool:
    found = await store.find_token(f"access-digest-{n}")
    return found is not None and found[0].revoked_at is None


async def changed_tokens(store: Store, since: int) -> set[str]:
    return {c.entity_id for c in await store.changes_since(since) if c.entity == "token"}


# -- clients ---------------------------------------------------------------------------------------


async def test_clients_round_trip_list_and_delete(store: Store, oauth: OAuthStore) -> None:
    app = client("cl_1")
    public = client("cl_2", ws=None, secret_hash=None, created_at=T0 + 1)
    other = client("cl_3", ws="ws_b", created_at=T0 + 2)
    for c in (other, app, public):
        await oauth.create_client(c)
    assert await oauth.get_client("cl_1") == app
    assert await oauth.get_client("cl_2") == public and not public.confidential
    assert await oauth.get_client("missing") is None
    assert [c.id for c in await oauth.list_clients()] == ["cl_1", "cl_2", "cl_3"]
    assert await oauth.list_clients(workspace_id="ws_b") == [other]
    with pytest.raises(StoreUnavailable):  # ids are unique
        await oauth.create_client(app)
    assert await oauth.delete_client("cl_3", T0 + 5) is True
    assert await oauth.delete_client("cl_3", T0 + 6) is False
    assert await oauth.get_client("cl_3") is None


async def test_deleting_a_client_revokes_every_grant_and_token_it_holds(
    store: Store, oauth: OAuthStore
) -> None:
    await oauth.create_client(client("cl_1"))
    await oauth.create_client(client("cl_2"))
    await oauth.create_grant(grant("gr_1"), code("gr_1"))
    await oauth.create_grant(grant("gr_2", "cl_2"), code("gr_2", "cl_2"))
    assert await issue(oauth, 1, gid="gr_1") and await issue(oauth, 2, gid="gr_2")
    since = await store.latest_change()

    assert await oauth.delete_client("cl_1", T0 + 20) is True
    g = await oauth.get_grant("gr_1")
    assert g is not None and g.revoked_at == T0 + 20 and g.revoke_reason == "client_deleted"
    assert not await active(store, 1)
    rt = await oauth.get_refresh("rt_1")
    assert rt is not None and rt.revoked_at == T0 + 20
    # every cache hears about the revoked access token; the other app is untouched
    assert await changed_tokens(store, since) == {"at_1"}
    assert await active(store, 2) and (await oauth.get_grant("gr_2")).revoked_at is None  # type: ignore[union-attr]


# -- grants and codes ------------------------------------------------------------------------------


async def test_grants_round_trip_and_filter(store: Store, oauth: OAuthStore) -> None:
    await oauth.create_client(client())
    g1 = grant("gr_1", scopes=frozenset({"items:read", "items:write"}))
    g2 = grant("gr_2", user_id="usr_2", created_at=T0 + 1)
    g3 = grant("gr_3", workspace_id="ws_b", created_at=T0 + 2)
    for g in (g3, g1, g2):
        await oauth.create_grant(g, code(g.id))
    assert await oauth.get_grant("gr_1") == g1
    assert await oauth.get_grant("nope") is None
    assert [g.id for g in await oauth.list_grants()] == ["gr_1", "gr_2", "gr_3"]
    assert await oauth.list_grants(user_id="usr_2") == [g2]
    assert await oauth.list_grants(workspace_id="ws_b") == [g3]
    assert await oauth.list_grants(user_id="usr_1", workspace_id="ws_a") == [g1]


async def test_a_code_is_first_used_exactly_once(store: Store, oauth: OAuthStore) -> None:
    await oauth.create_client(client())
    c = code("gr_1")
    await oauth.create_grant(grant("gr_1"), c)
    assert await oauth.consume_code("unknown", T0 + 1) is None
    assert await oauth.consume_code(c.hash, T0 + 1) == (c, True)
    again = await oauth.consume_code(c.hash, T0 + 2)
    assert again is not None and again[1] is False and again[0].used_at == T0 + 1


async def test_concurrent_exchanges_of_one_code_see_one_first_use(
    store: Store, oauth: OAuthStore
) -> None:
    await oauth.create_client(client())
    c = code("gr_1")
    await oauth.create_grant(grant("gr_1"), c)
    results = await asyncio.gather(*(oauth.consume_code(c.hash, T0 + i) for i in range(6)))
    firsts = [r for r in results if r is not None and r[1]]
    assert len(firsts) == 1 and all(r is not None for r in results)


async def test_revoking_a_grant_revokes_its_family_in_one_step(
    store: Store, oauth: OAuthStore
) -> None:
    await oauth.create_client(client())
    await oauth.create_grant(grant("gr_1"), code("gr_1"))
    await oauth.create_grant(grant("gr_2"), code("gr_2"))
    assert await issue(oauth, 1) and await issue(oauth, 2, rotate_from="rt_1")
    assert await issue(oauth, 3, gid="gr_2")
    since = await store.latest_change()

    assert await oauth.revoke_grant("gr_1", T0 + 30, "code_reuse") is True
    g = await oauth.get_grant("gr_1")
    assert g is not None and (g.revoked_at, g.revoke_reason) == (T0 + 30, "code_reuse")
    assert not await active(store, 1) and not await active(store, 2)
    for rid in ("rt_1", "rt_2"):
        assert (await oauth.get_refresh(rid)).revoked_at == T0 + 30  # type: ignore[union-attr]
    assert await changed_tokens(store, since) == {"at_1", "at_2"}
    assert await active(store, 3)  # another grant of the same user and app lives on
    # already revoked: nothing changes, and the first reason stays
    assert await oauth.revoke_grant("gr_1", T0 + 40, "user") is False
    assert (await oauth.get_grant("gr_1")).revoke_reason == "code_reuse"  # type: ignore[union-attr]
    assert await oauth.revoke_grant("missing", T0, "user") is False


# -- issuance --------------------------------------------------------------------------------------


async def test_issue_stores_an_access_token_and_a_refresh_token(
    store: Store, oauth: OAuthStore
) -> None:
    await oauth.create_client(client())
    await oauth.create_grant(grant("gr_1"), code("gr_1"))
    since = await store.latest_change()
    assert await issue(oauth, 1) is True
    assert await store.find_token("access-digest-1") == (access("at_1"), None)
    assert await oauth.find_refresh("refresh-digest-rt_1") == refresh("rt_1", "at_1")
    assert await oauth.get_refresh("rt_1") == refresh("rt_1", "at_1")
    assert await oauth.find_refresh("nope") is None and await oauth.get_refresh("nope") is None
    assert await changed_tokens(store, since) == {"at_1"}


async def test_rotation_happens_once_and_a_lost_race_stores_nothing(
    store: Store, oauth: OAuthStore
) -> None:
    await oauth.create_client(client())
    await oauth.create_grant(grant("gr_1"), code("gr_1"))
    assert await issue(oauth, 1)
    assert await issue(oauth, 2, rotate_from="rt_1", at=T0 + 20) is True
    old = await oauth.get_refresh("rt_1")
    assert old is not None and (old.rotated_at, old.replaced_by) == (T0 + 20, "rt_2")
    assert await issue(oauth, 3, rotate_from="rt_1") is False
    assert await store.find_token("access-digest-3") is None
    assert await oauth.get_refresh("rt_3") is None


async def test_concurrent_rotations_of_one_refresh_token_have_one_winner(
    store: Store, oauth: OAuthStore
) -> None:
    await oauth.create_client(client())
    await oauth.create_grant(grant("gr_1"), code("gr_1"))
    assert await issue(oauth, 0)
    results = await asyncio.gather(*(issue(oauth, n, rotate_from="rt_0") for n in range(1, 6)))
    assert sorted(results) == [False, False, False, False, True]
    (winner,) = [n for n, ok in zip(range(1, 6), results, strict=True) if ok]
    assert (await oauth.get_refresh("rt_0")).replaced_by == f"rt_{winner}"  # type: ignore[union-attr]
    stored = [n for n in range(1, 6) if await store.find_token(f"access-digest-{n}") is not None]
    assert stored == [winner]


async def test_supersede_replaces_an_unused_successor_after_a_lost_response(
    store: Store, oauth: OAuthStore
) -> None:
    await oauth.create_client(client())
    await oauth.create_grant(grant("gr_1"), code("gr_1"))
    assert await issue(oauth, 1)
    assert await issue(oauth, 2, rotate_from="rt_1")  # this response is "lost"
    since = await store.latest_change()
    assert await issue(oauth, 3, rotate_from="rt_1", supersede="rt_2", at=T0 + 25) is True
    assert (await oauth.get_refresh("rt_2")).revoked_at == T0 + 25  # type: ignore[union-attr]
    assert not await active(store, 2) and await active(store, 3)
    assert (await oauth.get_refresh("rt_1")).replaced_by == "rt_3"  # type: ignore[union-attr]
    assert {"at_2", "at_3"} <= await changed_tokens(store, since)
    # the lost successor is gone: superseding it again stores nothing
    assert await issue(oauth, 4, rotate_from="rt_1", supersede="rt_2") is False
    assert await store.find_token("access-digest-4") is None
    # nor can a successor that was already used be superseded
    assert await issue(oauth, 5, rotate_from="rt_3")
    assert await issue(oauth, 6, rotate_from="rt_1", supersede="rt_3") is False
    assert await active(store, 5)


async def test_issue_for_a_revoked_grant_stores_nothing(store: Store, oauth: OAuthStore) -> None:
    await oauth.create_client(client())
    await oauth.create_grant(grant("gr_1"), code("gr_1"))
    assert await issue(oauth, 1)
    await oauth.revoke_grant("gr_1", T0 + 5, "user")
    assert await issue(oauth, 2) is False
    assert await issue(oauth, 3, rotate_from="rt_1") is False
    assert await issue(oauth, 4, gid="gr_missing") is False
    for n in (2, 3, 4):
        assert await store.find_token(f"access-digest-{n}") is None
    assert (await oauth.get_refresh("rt_1")).rotated_at is None  # type: ignore[union-attr]


async def test_a_revocation_racing_issuance_never_leaves_a_live_token(
    store: Store, oauth: OAuthStore
) -> None:
    await oauth.create_client(client())
    for round_ in range(8):
        gid = f"gr_race{round_}"
        await oauth.create_grant(grant(gid), code(gid))
        n = 100 + round_
        issued, _ = await asyncio.gather(
            issue(oauth, n, gid=gid), oauth.revoke_grant(gid, T0 + 50, "user")
        )
        # whichever committed first, the grant ends revoked and so does anything issued from it
        assert (await oauth.get_grant(gid)).revoked_at == T0 + 50  # type: ignore[union-attr]
        assert not await active(store, n)
        rt = await oauth.get_refresh(f"rt_{n}")
        assert (rt is None) == (not issued)
        assert rt is None or rt.revoked_at is not None


# -- migrate-store ---------------------------------------------------------------------------------


@pytest.mark.parametrize("target_backend", ["sqlite", "postgres"])
async def test_export_import_carries_oauth_and_nonces(
    store: Store, oauth: OAuthStore, tmp_path: Path, target_backend: str
) -> None:
    await oauth.create_client(client("cl_1"))
    await oauth.create_client(client("cl_2", ws=None, secret_hash=None))
    await oauth.create_grant(grant("gr_1"), code("gr_1"))
    await oauth.create_grant(grant("gr_2", "cl_2"), code("gr_2", "cl_2"))
    assert await oauth.consume_code("code-digest-gr_1", T0 + 1)
    assert await issue(oauth, 1) and await issue(oauth, 2, rotate_from="rt_1")
    assert await issue(oauth, 3, gid="gr_2")
    await oauth.revoke_grant("gr_2", T0 + 40, "user")
    assert await store.use_nonce("link-1", 4_000_000_000.0)
    dump = await store.export_all()
    assert (len(dump.records(CLIENTS)), len(dump.records(GRANTS))) == (2, 2)
    assert (len(dump.records(CODES)), len(dump.records(REFRESH_TOKENS))) == (2, 3)
    assert len(dump.records(NONCES)) == 1

    async def check(url: str) -> None:
        target = open_store(url)
        await target.open()
        try:
            await target.import_all(dump)
            assert await target.export_all() == dump
            copy = oauth_store_for(target)
            # the copy is a working OAuth store: the refresh token rotates there, once
            live = await copy.find_refresh("refresh-digest-rt_2")
            assert live is not None and live.rotated_at is None
            assert await issue(copy, 9, rotate_from="rt_2") is True
            assert await issue(copy, 10, rotate_from="rt_2") is False
            assert await active(target, 9) and not await active(target, 3)  # gr_2 stays revoked
            again = await copy.consume_code("code-digest-gr_1", T0 + 99)
            assert again is not None and again[1] is False  # a spent code stays spent
            assert await target.use_nonce("link-1", 4_000_000_000.0) is False  # and a nonce
            # importing twice is refused and changes nothing
            with pytest.raises(StoreUnavailable):
                await target.import_all(dump)
            assert len((await target.export_all()).records(CLIENTS)) == 2
        finally:
            await target.close()

    if target_backend == "sqlite":
        await check(f"sqlite:///{tmp_path}/copy.db")
    else:
        async with fresh_postgres_schema() as url:
            await check(url)


async def test_import_refuses_a_target_holding_only_an_oauth_app(
    store_url: str, tmp_path: Path
) -> None:
    source = open_store(f"sqlite:///{tmp_path}/empty-source.db")
    await source.open()
    try:
        dump = await source.export_all()
    finally:
        await source.close()
    target = open_store(store_url)
    await target.open()
    try:
        await oauth_store_for(target).create_client(client("cl_only", ws=None))
        with pytest.raises(StoreUnavailable, match="oauth_clients"):
            await target.import_all(dump)
    finally:
        await target.close()
