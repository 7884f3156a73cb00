"""Helpers for the OAuth and session tests: mint session JWTs with test keys, and act as the
user's browser on the consent page (read the form, send the CSRF cookie back, follow nothing)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import aiohttp
import jwt
from aiohttp import web
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://project.supabase.test/auth/v1"
HS_SECRET = "test-session-secret-0123456789-abcdefghij"


def session_jwt(
    sub: str,
    *,
    key: Any = HS_SECRET,
    alg: str = "HS256",
    kid: str | None = None,
    ttl: float = 3600,
    **claims: Any,
) -> str:
    """A Supabase-style access token for ``sub``; any claim can be overridden or set to None."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": sub,
        "aud": "authenticated",
        "role": "authenticated",
        "iss": ISSUER,
        "iat": now,
        "exp": int(now + ttl),
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    headers = {"kid": kid} if kid else None
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge_jwt(header: dict[str, Any], payload: dict[str, Any], hmac_key: bytes | None) -> str:
    """A JWT built by hand, as an attacker would (PyJWT refuses to sign these)."""
    signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(payload).encode())
    sig = (
        b""
        if hmac_key is None
        else hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    )
    return signing_input + "." + _b64(sig)


def claims_for(sub: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    out: dict[str, Any] = {
        "sub": sub,
        "aud": "authenticated",
        "role": "authenticated",
        "iss": ISSUER,
    }
    out.update({"iat": now, "exp": now + 3600})
    out.update(overrides)
    return out


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, str] = {}
        self.options: list[str] = []
        self.action: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = a.get("action")
        elif tag == "input" and a.get("type") == "hidden":
            self.inputs[a["name"]] = a.get("value", "")
        elif tag == "option":
            self.options.append(a.get("value", ""))


@dataclass
class ConsentPage:
    status: int
    html: str
    fields: dict[str, str]
    workspaces: list[str]
    csrf_cookie: str | None
    headers: dict[str, str]


async def open_consent(
    http: aiohttp.ClientSession, url: str, session: str | None, *, cookie: str | None = None
) -> ConsentPage:
    headers = {"Authorization": f"Bearer {session}"} if session and not cookie else {}
    cookies = {cookie: session} if cookie and session else None
    async with http.get(url, headers=headers, cookies=cookies, allow_redirects=False) as r:
        text = await r.text()
        parser = _Form()
        parser.feed(text)
        morsel = r.cookies.get("gw_oauth_csrf")
        return ConsentPage(
            r.status,
            text,
            parser.inputs,
            parser.options,
            morsel.value if morsel else None,
            dict(r.headers),
        )


async def decide(
    http: aiohttp.ClientSession,
    consent_url: str,
    page: ConsentPage,
    session: str,
    decision: str = "approve",
    *,
    workspace: str | None = None,
    csrf_cookie: str | None = "from-page",
    **override: str,
) -> tuple[int, str | None]:
    """POST the consent form; returns the status and the Location header (never followed)."""
    form = dict(page.fields)
    form["decision"] = decision
    form["workspace"] = workspace or page.workspaces[0]
    form.update(override)
    cookie = page.csrf_cookie if csrf_cookie == "from-page" else csrf_cookie
    headers = {"Authorization": f"Bearer {session}"}
    if cookie is not None:
        headers["Cookie"] = f"gw_oauth_csrf={cookie}"
    async with http.post(
        consent_url.split("?")[0], data=form, headers=headers, allow_redirects=False
    ) as r:
        await r.read()
        return r.status, r.headers.get("Location")


def jwk_of(public_key: Any, kid: str, alg: str) -> dict[str, Any]:
    algo = RSAAlgorithm if alg.startswith("RS") else ECAlgorithm
    jwk: dict[str, Any] = json.loads(algo.to_jwk(public_key))
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


@dataclass
class JWKSServer:
    """A real JWKS endpoint on loopback that counts how often it is fetched."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    fetches: int = 0
    status: int = 200  # set to e.g. 500 to simulate an outage
    url: str = ""
    runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def jwks(request: web.Request) -> web.Response:
            self.fetches += 1
            if self.status != 200:
                return web.json_response({"error": "down"}, status=self.status)
            return web.json_response({"keys": self.keys})

        app = web.Application()
        app.router.add_get("/auth/v1/.well-known/jwks.json", jwks)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/auth/v1/.well-known/jwks.json"
