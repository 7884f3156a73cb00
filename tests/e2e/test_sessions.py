"""Issue 5: session JWTs (Supabase-style) verified with PyJWT, against a running gateway, a
recording upstream, a JWKS served by a real aiohttp server on loopback, and a real SQLite store.

Shown refused: `alg: none`, HS/RS key confusion (the RSA public key used as an HMAC secret), wrong
`aud`, wrong `iss`, expired `exp`, a wrong role, an unknown user, an unknown `kid` (with the JWKS
refetched at most once per cooldown), and a session on a route that does not accept sessions.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from gateway.core import tokens
from tests.conftest import GatewayFactory
from tests.support.calls import send
from tests.support.harness import RunningGateway, Upstream, eventually
from tests.support.oauth import (
    HS_SECRET,
    ISSUER,
    JWKSServer,
    claims_for,
    forge_jwt,
    jwk_of,
    session_jwt,
)

CONFIG = """
store: "{store}"
token_types:
  - {name: key, prefix: gw_, kind: api_key}
workspace: {source: header, header: X-Workspace-Slug, match: slug, required: true}
upstreams: {api: "{up}"}
scopes:
  known: [items:read, items:write]
  implies: {items:write: [items:read]}
roles: {member: [items:read, items:write], viewer: [items:read]}
cache: {poll_interval: 0.1}
sessions:
{sessions}
routes:
  - {name: items-read, path: /api/items/**, methods: [GET], scopes: [items:read]}
  - {name: items-write, path: /api/items/**, methods: [POST], scopes: [items:write]}
  - {name: web, path: /web/**, auth_methods: [session], scopes: [items:read]}
  - {name: integrations, path: /integrations/**, auth_methods: [token], scopes: [items:read]}
"""


@dataclass
class Setup:
    gw: RunningGateway
    ann: str  # member of acme
    vic: str  # viewer of acme


async def setup(gw: RunningGateway) -> Setup:
    s = gw.services
    await s.create_workspace("Acme", "acme")
    await s.create_workspace("Other", "other")
    ann = (await s.create_user("ann@example.com")).id
    vic = (await s.create_user("vic@example.com")).id
    await s.add_member("acme", ann, "member")
    await s.add_member("acme", vic, "viewer")
    return Setup(gw, ann, vic)


async def ask(
    http: aiohttp.ClientSession,
    gw: RunningGateway,
    jwt_value: str,
    path: str = "/api/items/1",
    method: str = "GET",
    slug: str = "acme",
) -> int:
    """The status of ``method path`` in workspace ``slug``, authenticated by the session JWT."""
    headers = {"Authorization": f"Bearer {jwt_value}", "X-Workspace-Slug": slug}
    return (await send(http, method, gw.url + path, headers)).status


HS_SESSIONS = f"""
  algorithms: [HS256]
  secret: "{HS_SECRET}"
  issuer: "{ISSUER}"
"""


@pytest.fixture
async def hs(make_gateway: GatewayFactory, upstream: Upstream) -> Setup:
    return await setup(await make_gateway(CONFIG, up=upstream.url, sessions=HS_SESSIONS))


async def test_a_session_acts_as_its_user_within_the_users_role(
    hs: Setup, http: aiohttp.ClientSession, upstream: Upstream
) -> None:
    assert await ask(http, hs.gw, session_jwt(hs.ann)) == 200
    seen = upstream.last
    assert seen.header("X-Gateway-User-Id") == hs.ann
    assert seen.header("X-Gateway-Auth-Method") == "session"
    assert seen.header("X-Gateway-Workspace-Slug") == "acme"
    assert seen.header("Authorization") is None  # the JWT never reaches the upstream
    assert await ask(http, hs.gw, session_jwt(hs.ann), method="POST") == 200
    # sub may also be the user's email; a viewer may read but not write.
    assert await ask(http, hs.gw, session_jwt("vic@example.com")) == 200
    assert await ask(http, hs.gw, session_jwt(hs.vic), method="POST") == 403
    # a workspace the user is not a member of
    assert await ask(http, hs.gw, session_jwt(hs.ann), slug="other") == 403


def hs512(sub: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT: the test secret is short for HS512
        return session_jwt(sub, alg="HS512")


async def test_forged_misaddressed_and_expired_jwts_are_refused(
    hs: Setup, http: aiohttp.ClientSession
) -> None:
    ann = hs.ann
    good = claims_for(ann)
    cases = {
        "alg none": forge_jwt({"alg": "none", "typ": "JWT"}, good, None),
        "alg None": forge_jwt({"alg": "None", "typ": "JWT"}, good, None),
        "alg none with a signature": forge_jwt({"alg": "none"}, good, HS_SECRET.encode()),
        "wrong aud": session_jwt(ann, aud="anon"),
        "no aud": session_jwt(ann, aud=None),
        "wrong iss": session_jwt(ann, iss="https://evil.supabase.co/auth/v1"),
        "no iss": session_jwt(ann, iss=None),
        "expired": session_jwt(ann, ttl=-60),  # beyond the 10 s leeway
        "no exp": session_jwt(ann, exp=None),
        "wrong role": session_jwt(ann, role="anon"),
        "unknown user": session_jwt("usr_nobody"),
        "wrong secret": session_jwt(ann, key="another-secret-that-is-long-enough-123"),
        "HS512 not allowed": hs512(ann),
        "tampered payload": forge_jwt(
            {"alg": "HS256", "typ": "JWT"}, claims_for(ann, role="service_role"), b"guess"
        ),
    }
    for name, value in cases.items():
        headers = {"Authorization": f"Bearer {value}", "X-Workspace-Slug": "acme"}
        async with http.get(hs.gw.url + "/api/items/1", headers=headers) as r:
            body = await r.json()
            assert r.status == 401, name
            assert body["error"]["code"] == "UNAUTHORIZED"
            assert "invalid_token" in r.headers["WWW-Authenticate"]
    # Clock skew inside the leeway is tolerated.
    assert await ask(http, hs.gw, session_jwt(ann, ttl=-3)) == 200


async def test_routes_choose_whether_sessions_are_accepted(
    hs: Setup, http: aiohttp.ClientSession
) -> None:
    session = session_jwt(hs.ann)
    _, key = await hs.gw.services.create_token(workspace="acme", name="k", scopes=["items:read"])
    assert await ask(http, hs.gw, session, "/web/dashboard") == 200
    assert await ask(http, hs.gw, key, "/web/dashboard") == 401
    assert await ask(http, hs.gw, key, "/integrations/x") == 200
    assert await ask(http, hs.gw, session, "/integrations/x") == 401


# -- RS256 / ES256 through a JWKS ------------------------------------------------------------------


@dataclass
class Keys:
    rsa: RSAPrivateKey
    rsa2: RSAPrivateKey
    ec: ec.EllipticCurvePrivateKey


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec.generate_private_key(ec.SECP256R1()),
    )


async def test_rs256_from_a_jwks_url_and_hs_rs_key_confusion(
    make_gateway: GatewayFactory,
    upstream: Upstream,
    http: aiohttp.ClientSession,
    jwks_server: JWKSServer,
    keys: Keys,
) -> None:
    jwks_server.keys = [jwk_of(keys.rsa.public_key(), "k1", "RS256")]
    sessions = f"""
  algorithms: [RS256, HS256]
  secret: "{HS_SECRET}"
  issuer: "{ISSUER}"
  jwks_url: "{jwks_server.url}"
"""
    s = await setup(await make_gateway(CONFIG, up=upstream.url, sessions=sessions))
    good = session_jwt(s.ann, key=keys.rsa, alg="RS256", kid="k1")
    assert await ask(http, s.gw, good) == 200
    # The attacker knows the public key and signs HS256 with its PEM as the HMAC secret.
    pem = keys.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    confused = [
        forge_jwt({"alg": "HS256", "typ": "JWT", "kid": "k1"}, claims_for(s.ann), pem),
        forge_jwt({"alg": "HS256", "typ": "JWT"}, claims_for(s.ann), pem),
        # the JWK itself as a secret, for servers that pass the JWKS entry straight through
        forge_jwt(
            {"alg": "HS256", "kid": "k1"},
            claims_for(s.ann),
            json.dumps(jwks_server.keys[0]).encode(),
        ),
    ]
    for value in confused:
        assert await ask(http, s.gw, value) == 401
    # An RS256 token signed by another key under the same kid.
    assert await ask(http, s.gw, session_jwt(s.ann, key=keys.rsa2, alg="RS256", kid="k1")) == 401
    # Wrong aud / iss / expired are refused for RS256 too.
    for claims in ({"aud": "anon"}, {"iss": "https://x.test"}, {"ttl": -60}):
        assert (
            await ask(http, s.gw, session_jwt(s.ann, key=keys.rsa, alg="RS256", kid="k1", **claims))
            == 401
        )


async def test_unknown_kid_is_refused_and_refetched_at_most_once_per_cooldown(
    make_gateway: GatewayFactory,
    upstream: Upstream,
    http: aiohttp.ClientSession,
    jwks_server: JWKSServer,
    keys: Keys,
) -> None:
    jwks_server.keys = [jwk_of(keys.rsa.public_key(), "k1", "RS256")]
    sessions = f"""
  algorithms: [RS256]
  issuer: "{ISSUER}"
  jwks_url: "{jwks_server.url}"
  jwks_cooldown: 1
"""
    s = await setup(await make_gateway(CONFIG, up=upstream.url, sessions=sessions))
    assert await ask(http, s.gw, session_jwt(s.ann, key=keys.rsa, alg="RS256", kid="k1")) == 200
    assert jwks_server.fetches == 1
    # A rotated-in key the gateway has not seen: refused, and a flood of them costs no fetches
    # inside the cooldown.
    rotated = session_jwt(s.ann, key=keys.rsa2, alg="RS256", kid="k2")
    for _ in range(5):
        assert await ask(http, s.gw, rotated) == 401
    assert jwks_server.fetches == 1
    # Once the JWKS publishes k2, the next refetch (after the cooldown) picks it up: exactly one.
    jwks_server.keys.append(jwk_of(keys.rsa2.public_key(), "k2", "RS256"))
    started = time.monotonic()

    async def accepted() -> bool:
        return await ask(http, s.gw, rotated) == 200

    await eventually(accepted, within=3.0)
    assert time.monotonic() - started > 0.5  # not before the cooldown ran out
    assert jwks_server.fetches == 2
    # A kid nobody publishes stays refused.
    assert await ask(http, s.gw, session_jwt(s.ann, key=keys.rsa, alg="RS256", kid="k9")) == 401


async def test_es256_from_a_jwks_file_and_key_type_mismatch(
    make_gateway: GatewayFactory,
    upstream: Upstream,
    http: aiohttp.ClientSession,
    keys: Keys,
    tmp_path: Path,
) -> None:
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(
        json.dumps(
            {
                "keys": [
                    jwk_of(keys.ec.public_key(), "ec1", "ES256"),
                    jwk_of(keys.rsa.public_key(), "rsa1", "RS256"),
                ]
            }
        )
    )
    sessions = f"""
  algorithms: [ES256]
  issuer: "{ISSUER}"
  jwks_file: "{jwks_file}"
"""
    s = await setup(await make_gateway(CONFIG, up=upstream.url, sessions=sessions))
    assert await ask(http, s.gw, session_jwt(s.ann, key=keys.ec, alg="ES256", kid="ec1")) == 200
    # ES256 claimed against an RSA key, and RS256 (not in the allowlist) are refused.
    assert await ask(http, s.gw, session_jwt(s.ann, key=keys.ec, alg="ES256", kid="rsa1")) == 401
    assert await ask(http, s.gw, session_jwt(s.ann, key=keys.rsa, alg="RS256", kid="rsa1")) == 401
    # A JWT never reaches the token lookup as a token: checksum-shaped garbage stays 401.
    assert await ask(http, s.gw, "gw_" + "A" * (tokens.RANDOM_LENGTH + 6)) == 401


async def test_an_unreachable_jwks_fails_closed_without_hammering_it(
    make_gateway: GatewayFactory,
    upstream: Upstream,
    http: aiohttp.ClientSession,
    jwks_server: JWKSServer,
    keys: Keys,
) -> None:
    jwks_server.status = 500
    sessions = f"""
  algorithms: [RS256]
  issuer: "{ISSUER}"
  jwks_url: "{jwks_server.url}"
"""
    s = await setup(await make_gateway(CONFIG, up=upstream.url, sessions=sessions))
    good = session_jwt(s.ann, key=keys.rsa, alg="RS256", kid="k1")
    for _ in range(3):
        headers = {"Authorization": f"Bearer {good}", "X-Workspace-Slug": "acme"}
        async with http.get(s.gw.url + "/api/items/1", headers=headers) as r:
            assert r.status == 503
            assert (await r.json())["error"]["code"] == "STORE_UNAVAILABLE"
    assert jwks_server.fetches == 1  # one attempt, then a backoff
    assert upstream.seen == []
