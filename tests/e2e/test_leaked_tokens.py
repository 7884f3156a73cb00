"""Issue 17 §7: ``POST /credentials/revoke`` — anyone kills a leaked token in seconds.

Runs the real Spedy preset: a scanner posts what it found in a public repository, unauthenticated.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from gateway.core import tokens
from gateway.features import leaks
from tests.e2e.test_me_tokens import gw  # noqa: F401  (fixture: Spedy, ann a member of acme-corp)
from tests.support.calls import call
from tests.support.harness import RunningGateway, eventually
from tests.support.presets import answers

HOST = "acme-corp.spedy.app"
URL = "/credentials/revoke"


async def pat(gw: RunningGateway) -> tuple[str, str]:  # noqa: F811
    rec, plain = await gw.services.create_token(
        workspace="acme-corp", name="leaky", type="spedy_pat", user="ann@acme.test"
    )
    return rec.id, plain


async def test_a_leaked_token_dies_within_a_second_and_the_owner_is_told(
    gw: RunningGateway,  # noqa: F811
    http: aiohttp.ClientSession,
) -> None:
    token_id, leaked = await pat(gw)
    _, kept = await pat(gw)
    api = f"{gw.url}/api/v1/tickets"
    auth = {"Host": HOST, "Authorization": f"Bearer {leaked}"}
    assert (await call(http, "GET", api, auth))[0] == 200  # cached as valid
    status, body = await call(http, "POST", gw.url + URL, json={"tokens": [leaked]})
    assert (status, body) == (202, {"received": 1})
    took = await eventually(answers(http, "GET", api, auth, 401), within=1.0)
    assert took <= 1.0
    kept_auth = {"Host": HOST, "Authorization": f"Bearer {kept}"}
    assert (await call(http, "GET", api, kept_auth))[0] == 200
    ws = await gw.services.workspace("acme-corp")
    events = await gw.services.store.list_audit(workspace_id=ws.id)
    [event] = [e for e in events if e.action == "token.revoked_as_leaked"]
    assert event.token_id == token_id and event.actor == "leak-report"
    assert event.visible_prefix == leaked[: tokens.VISIBLE_PREFIX_LENGTH]
    # Reporting it again changes nothing and records nothing new.
    assert (await call(http, "POST", gw.url + URL, json={"tokens": [leaked]}))[0] == 202
    events = await gw.services.store.list_audit(workspace_id=ws.id)
    assert len([e for e in events if e.action == "token.revoked_as_leaked"]) == 1


async def test_the_answer_never_says_which_tokens_existed(
    gw: RunningGateway,  # noqa: F811
    http: aiohttp.ClientSession,
) -> None:
    _, real = await pat(gw)
    unknown = tokens.mint("spedy_pat_")  # well-formed, checksum right, never issued
    typo = real[:-1] + ("A" if real[-1] != "A" else "B")  # checksum wrong: never looked up
    seen = set()
    for batch in ([real], [unknown], [typo], ["not a token"]):
        async with http.post(gw.url + URL, json={"tokens": batch}) as r:
            seen.add((r.status, r.headers["Content-Type"], await r.read()))
    assert seen == {(202, "application/json", b'{"received":1}')}
    status, body = await call(http, "POST", gw.url + URL, json={"tokens": [unknown, typo]})
    assert (status, body) == (202, {"received": 2})


async def test_bad_requests_are_400_and_big_batches_refused(
    gw: RunningGateway,  # noqa: F811
    http: aiohttp.ClientSession,
) -> None:
    bad: list[Any] = [{}, {"tokens": "x"}, {"tokens": [1]}, {"tokens": [], "more": 1}, []]
    for payload in bad:
        status, body = await call(http, "POST", gw.url + URL, json=payload)
        assert status == 400 and body["error"]["code"] == "INVALID_ARGUMENT", payload
    many = [tokens.mint("spedy_pat_") for _ in range(leaks.MAX_TOKENS)]
    assert (await call(http, "POST", gw.url + URL, json={"tokens": many}))[0] == 202
    status, body = await call(http, "POST", gw.url + URL, json={"tokens": [*many, many[0]]})
    assert status == 400 and "1000" in body["error"]["message"]
    assert (await call(http, "GET", gw.url + URL))[0] == 405


async def test_reports_are_rate_limited_per_client_address(
    gw: RunningGateway,  # noqa: F811
    http: aiohttp.ClientSession,
) -> None:
    statuses = [
        (await call(http, "POST", gw.url + URL, json={"tokens": []}))[0]
        for _ in range(leaks.LIMIT + 1)
    ]
    assert statuses == [202] * leaks.LIMIT + [429]
    async with http.post(gw.url + URL, json={"tokens": []}) as r:
        assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
