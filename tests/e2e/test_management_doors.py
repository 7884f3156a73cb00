"""Issue 17 §1: no credential may mint or manage a credential more powerful than itself.

The two escalations found with the Spedy preset (``config/spedy.yaml``), reproduced as a hostile
client would, then the rules around them. The full kind x operation x size matrix is in
``test_management_matrix.py``.
"""

from __future__ import annotations

import json

import aiohttp

from gateway.features.oauth.pkce import challenge_for
from gateway.features.oauth.service import OAuthService
from gateway.features.oauth.store import ClientRecord, GrantRecord
from tests.e2e.test_me_tokens import gw  # noqa: F401  (fixture: Spedy, ann a member of acme-corp)
from tests.support.calls import call
from tests.support.harness import RunningGateway
from tests.support.presets import cli

HOST = "acme-corp.spedy.app"
REDIRECT = "https://app.example/callback"


def h(token: str) -> dict[str, str]:
    return {"Host": HOST, "Authorization": f"Bearer {token}"}


async def approved_grant(
    g: RunningGateway, user_id: str, ws_id: str, scopes: list[str]
) -> tuple[OAuthService, ClientRecord, str, GrantRecord, str]:
    """A new public app and the user's consent to ``scopes`` through the real service:
    (service, app, code, grant, PKCE verifier)."""
    svc = OAuthService(g.services.store, g.config)
    client, _ = await svc.create_client("Tool", [REDIRECT], scopes, public=True)
    verifier = "v" * 64
    req = svc.check_authorize(
        client,
        REDIRECT,
        {
            "response_type": "code",
            "code_challenge": challenge_for(verifier),
            "code_challenge_method": "S256",
            "scope": " ".join(scopes),
        },
    )
    m = await g.services.store.get_membership(user_id, ws_id)
    assert m is not None
    code, grant = await svc.approve(req, user_id, ws_id, m.role)
    return svc, client, code, grant, verifier


async def oauth_token(g: RunningGateway, email: str, org: str, scopes: list[str]) -> str:
    """An access token from the real authorization-code + PKCE exchange, granted ``scopes``."""
    user = await g.services.user(email)
    ws = await g.services.workspace(org)
    svc, client, code, _, verifier = await approved_grant(g, user.id, ws.id, scopes)
    out = await svc.token(
        client,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
    )
    return str(out["access_token"])


async def test_an_oauth_token_with_tickets_read_cannot_mint_an_admin_pat(
    gw: RunningGateway,  # noqa: F811
    http: aiohttp.ClientSession,
) -> None:
    token = await oauth_token(gw, "ann@acme.test", "acme-corp", ["tickets:read"])
    base = gw.url
    assert (await call(http, "GET", f"{base}/api/v1/tickets", h(token)))[0] == 200
    status, body = await call(
        http, "POST", f"{base}/api/v1/me/tokens", h(token), json={"name": "x"}
    )
    # Before issue 17: 201 with a spedy_pat_ holding admin:all, which then got 200 on customers.
    assert status == 403 and body["error"]["code"] == "FORBIDDEN"
    assert "tokens:write" in body["error"]["message"]
    assert not [t for t in await gw.services.store.list_tokens() if t.kind == "pat"]


async def test_a_read_only_pat_cannot_mint_a_wider_pat_nor_delete_the_users_other_pats(
    gw: RunningGateway,  # noqa: F811
    http: aiohttp.ClientSession,
) -> None:
    svc = gw.services
    full, full_token = await svc.create_token(
        workspace="acme-corp", name="full", type="spedy_pat", user="ann@acme.test"
    )
    _, narrow = await svc.create_token(
        workspace="acme-corp",
        name="narrow",
        type="spedy_pat",
        user="ann@acme.test",
        scopes=["tickets:read"],
    )
    base = f"{gw.url}/api/v1/me/tokens"
    status, body = await call(http, "POST", base, h(narrow), json={"name": "x"})
    assert status == 403 and "tokens:write" in body["error"]["message"]
    status, _ = await call(http, "DELETE", f"{base}/{full.id}", h(narrow))
    assert status == 403  # before: 204, the user's broader PAT revoked by a read-only one
    assert (await call(http, "GET", f"{gw.url}/api/v1/customers", h(full_token)))[0] == 200
    # Even holding tokens:write, a narrower PAT may not delete a wider one.
    _, manager = await svc.create_token(
        workspace="acme-corp",
        name="manager",
        type="spedy_pat",
        user="ann@acme.test",
        scopes=["tickets:read", "tokens:write"],
    )
    status, body = await call(http, "DELETE", f"{base}/{full.id}", h(manager))
    assert status == 403 and "customers:write" in body["error"]["message"]
    status, listed = await call(http, "GET", base, h(manager))
    assert status == 200 and full.id not in {t["id"] for t in listed["tokens"]}
    # ... and what it mints without asking is what it holds, never the user's role.
    status, made = await call(http, "POST", base, h(manager), json={"name": "child"})
    assert status == 201
    assert made["scopes"] == ["tickets:read", "tokens:read", "tokens:write"]
    assert (await call(http, "POST", f"{gw.url}/api/v1/customers", h(made["token"])))[0] == 403


async def test_a_members_pat_lists_what_it_can_do_not_admin_all(
    gw: RunningGateway,  # noqa: F811
    http: aiohttp.ClientSession,
) -> None:
    _, token = await gw.services.create_token(
        workspace="acme-corp", name="seed", type="spedy_pat", user="ann@acme.test"
    )
    status, listed = await call(http, "GET", f"{gw.url}/api/v1/me/tokens", h(token))
    assert status == 200
    [entry] = listed["tokens"]
    assert "admin:all" not in entry["scopes"]
    assert entry["scopes"] == sorted(
        gw.config.scopes.expand(gw.config.roles["member"])
    )  # the member role, with what it implies


async def test_the_cli_acting_for_a_user_never_exceeds_that_users_role(gw: RunningGateway) -> None:  # noqa: F811
    """``gateway token create --user`` is a door too: the user's role bounds the token."""
    env = {"GATEWAY_STORE": gw.config.store}
    base = ("token", "create", "--workspace", "acme-corp", "--name", "ci", "--user")
    out = cli("spedy", *base, "vic@acme.test", "--scope", "tickets:write", env=env)
    assert out.returncode == 1, out.stdout
    error = json.loads(out.stderr)["error"]
    assert error["code"] == "FORBIDDEN" and "tickets:write" in error["message"]
    assert "spedy_pat_" not in out.stdout
    out = cli("spedy", *base, "vic@acme.test", env=env)  # no --scope: the viewer role's scopes
    assert out.returncode == 0, out.stderr
    made = json.loads(out.stdout)
    assert made["scopes"] == sorted(gw.config.scopes.expand(gw.config.roles["viewer"]))


async def test_a_credential_cannot_mint_one_that_outlives_it(
    gw: RunningGateway,  # noqa: F811
    http: aiohttp.ClientSession,
) -> None:
    """Lifetime is power too: an app's one-hour OAuth token (granted tokens:write) minted a PAT
    that never expired, so revoking the app's grant left the app a working credential (issue 17
    review). A new token expires no later than the token that made it."""
    user = await gw.services.user("ann@acme.test")
    ws = await gw.services.workspace("acme-corp")
    scopes = ["tickets:read", "tokens:write"]
    svc, client, code, _, verifier = await approved_grant(gw, user.id, ws.id, scopes)
    exchanged = await svc.token(
        client,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
    )
    app_token = str(exchanged["access_token"])
    base = f"{gw.url}/api/v1/me/tokens"
    # Asking for a longer life than the caller's is refused, naming why.
    status, body = await call(
        http, "POST", base, h(app_token), json={"name": "forever", "expiresIn": "365d"}
    )
    assert status == 403 and body["error"]["code"] == "FORBIDDEN", body
    # Asking for nothing gives the caller's own expiry, not "never".
    status, made = await call(http, "POST", base, h(app_token), json={"name": "child"})
    assert status == 201 and made["expiresAt"] is not None, made
    found = await gw.services.store.find_token(gw.services.hasher(app_token))
    assert found is not None and found[0].expires_at is not None
    child = await gw.services.token(made["id"])
    assert child.expires_at is not None and child.expires_at <= found[0].expires_at
    # A shorter life is fine.
    status, _ = await call(
        http, "POST", base, h(app_token), json={"name": "short", "expiresIn": "10m"}
    )
    assert status == 201
