"""Issue 18: the cache-hit memo (gateway/pipeline/memo.py) answers repeated requests, and every
change the change feed carries still wins over it within the usual bound (a second), exactly as
over the caches it is derived from; what it answers is what the full path answers."""

from __future__ import annotations

import time

import aiohttp
import pytest

from gateway.app import Gateway
from gateway.config import IdentityHeaders
from tests.conftest import GatewayFactory
from tests.support.core_config import CORE
from tests.support.harness import RunningGateway, Upstream, eventually, item_status, refused_within

IDENTITY = IdentityHeaders().names()


@pytest.fixture
async def gw(make_gateway: GatewayFactory, upstream: Upstream) -> RunningGateway:
    g = await make_gateway(
        CORE, up=upstream.url, sandbox=upstream.url, timeout=2, trusted="10.9.9.9/32"
    )
    await g.services.create_workspace("Acme", "acme", "ws_acme")
    return g


def memoized(gateway: Gateway) -> int:
    """How many workspace conclusions the current runtime's memo holds, over all tokens."""
    return sum(len(hit.workspaces) for hit in gateway.runtime.memo.entries.values())


async def test_a_revoked_token_is_refused_within_a_second_with_the_memo_in_place(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    rec, tok = await gw.services.create_token(workspace="acme", name="r", scopes=["items:read"])
    for _ in range(3):
        assert await item_status(http, gw, tok) == 200
    assert memoized(gw.gw) == 1  # the requests above were answered by the memo
    await gw.services.revoke_token(rec.id)
    took = await refused_within(http, gw, tok, within=1.0)
    print(f"revocation won over the memo in {took * 1000:.0f} ms")
    assert await item_status(http, gw, tok) == 401


async def test_membership_removal_and_role_change_win_over_the_memo(
    gw: RunningGateway, http: aiohttp.ClientSession
) -> None:
    svc = gw.services
    await svc.create_user("ann@example.com")
    await svc.create_user("bob@example.com")
    await svc.add_member("acme", "ann@example.com", "member")
    await svc.add_member("acme", "bob@example.com", "member")
    _, ann = await svc.create_token(workspace="acme", name="a", type="pat", user="ann@example.com")
    _, bob = await svc.create_token(workspace="acme", name="b", type="pat", user="bob@example.com")
    headers = {"Authorization": f"Bearer {bob}", "X-Workspace-Id": "acme"}
    for _ in range(2):
        assert await item_status(http, gw, ann) == 200
        async with http.post(f"{gw.url}/api/items", headers=headers) as r:
            assert r.status == 200
    assert memoized(gw.gw) == 2

    await svc.remove_member("acme", "ann@example.com")
    await refused_within(http, gw, ann, within=1.0)

    # bob becomes a viewer: reading still allowed, writing refused within a second
    await svc.add_member("acme", "bob@example.com", "viewer")

    async def write_refused() -> bool:
        async with http.post(f"{gw.url}/api/items", headers=headers) as r:
            return r.status == 403

    await eventually(write_refused, within=1.0, interval=0.01)
    assert await item_status(http, gw, bob) == 200


async def test_the_memo_answers_what_the_full_path_answers(
    gw: RunningGateway, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    _, tok = await gw.services.create_token(workspace="acme", name="r", scopes=["items:read"])
    assert await item_status(http, gw, tok) == 200  # a cache miss: the store, nothing memoized
    first = upstream.seen[-1]
    assert memoized(gw.gw) == 0
    assert (
        await item_status(http, gw, tok) == 200
    )  # a cache hit: the full path, which fills the memo
    assert memoized(gw.gw) == 1
    assert await item_status(http, gw, tok) == 200  # the memo
    second = upstream.seen[-1]
    sent = [first.header(n) for n in IDENTITY]
    assert sent[0] and sent[2:] == ["ws_acme", "acme", "items:read", "token", "live"], sent
    assert [second.header(n) for n in IDENTITY] == sent
    # Allowed on one route is not allowed on another: the scope check runs per route.
    headers = {"Authorization": f"Bearer {tok}", "X-Workspace-Id": "acme"}
    for _ in range(2):
        async with http.post(f"{gw.url}/api/items", headers=headers) as r:
            assert r.status == 403
    # Nor for another workspace key: refused like the full path refuses it.
    await gw.services.create_workspace("Other", "other", "ws_other")
    other = {"Authorization": f"Bearer {tok}", "X-Workspace-Id": "other"}
    async with http.get(f"{gw.url}/api/items/1", headers=other) as r:
        assert r.status == 403
    # An expiring token is refused the moment it expires, memo or not (the clock is checked on
    # every request; no change is announced for an expiry that simply arrives).
    expires = time.time() + 1.0
    _, short = await gw.services.create_token(
        workspace="acme", name="s", scopes=["items:read"], expires_at=expires
    )
    assert await item_status(http, gw, short) == 200
    assert await item_status(http, gw, short) == 200
    assert memoized(gw.gw) == 2

    async def expired() -> bool:
        return time.time() > expires

    await eventually(expired, within=2.0)
    assert await item_status(http, gw, short) == 401
