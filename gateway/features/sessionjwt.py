"""Session JWTs (Supabase-style) for the web client: the :data:`SessionVerifier` hook of authn.

Verification is PyJWT's, with every choice pinned by config rather than by the token:

* the header's ``alg`` must be in ``sessions.algorithms`` (``none`` can never be configured);
* HS* tokens are checked only with the configured secret, RS*/ES* tokens only with a key from the
  JWKS whose ``kid`` they name, whose key type (and ``alg``, ``crv`` when given) fit the algorithm:
  an RSA public key can never be used as an HMAC secret (HS/RS confusion);
* ``iss``, ``aud`` (``authenticated``), ``exp`` (small leeway) and ``sub`` are required and checked,
  and ``role`` must be one of ``sessions.roles``;
* ``sub`` names a user (id or email); that user's memberships then decide the workspace and scopes.

The JWKS comes from a file or a URL, fetched with aiohttp (never blocking the loop), cached, and
refetched on an unknown ``kid`` at most once per ``jwks_cooldown``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from cachetools import TTLCache

from gateway.config import JWT_HMAC_ALGORITHMS, SessionsConfig
from gateway.core.errors import AuthenticationError, StoreUnavailable
from gateway.core.identity import Principal
from gateway.core.lazy import lazy_module

if TYPE_CHECKING:
    from gateway.app import Gateway


if TYPE_CHECKING:
    import jwt
else:
    jwt = lazy_module("jwt")  # first use imports it (gateway/core/lazy.py)

__all__ = ["JWKS", "SessionVerifier", "install"]

_KTY = {"RS": "RSA", "ES": "EC"}
_CRV = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
MAX_JWKS_BYTES = 1 << 20
FAILED_FETCH_BACKOFF = 5.0


def _invalid(reason: str, message: str = "The session token is invalid.") -> AuthenticationError:
    return AuthenticationError(message, reason=reason)


class JWKS:
    """Keys by ``kid`` from a file or URL; refetched on an unknown kid at most once per cooldown."""

    def __init__(
        self,
        cfg: SessionsConfig,
        client: Callable[[], aiohttp.ClientSession],
    ) -> None:
        self.file, self.url, self.cooldown = cfg.jwks_file, cfg.jwks_url, cfg.jwks_cooldown
        self.client = client
        self.keys: dict[str, dict[str, Any]] | None = None
        self.fetches = 0
        self._last_fetch = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self, kid: str) -> dict[str, Any] | None:
        keys = self.keys
        if keys is not None and kid in keys:
            return keys[kid]
        async with self._lock:
            keys = self.keys
            if keys is not None and kid in keys:
                return keys[kid]  # another request refetched meanwhile
            since = time.monotonic() - self._last_fetch
            if keys is None and since < min(self.cooldown, FAILED_FETCH_BACKOFF):
                # The last fetch failed moments ago: do not hammer the JWKS during an outage.
                raise StoreUnavailable(
                    "Session keys are unavailable; try again shortly.", reason="jwks_unavailable"
                )
            if keys is None or since >= self.cooldown:
                await self._refresh()
        return (self.keys or {}).get(kid)

    async def _refresh(self) -> None:
        self._last_fetch = time.monotonic()
        self.fetches += 1
        try:
            doc = await self._fetch()
            found = {
                k["kid"]: k
                for k in doc.get("keys", [])
                if isinstance(k, dict) and isinstance(k.get("kid"), str)
            }
        except (OSError, ValueError, aiohttp.ClientError, TimeoutError, AttributeError) as exc:
            if self.keys is None:
                # Fail closed: with no keys at all, no session can be verified.
                raise StoreUnavailable(
                    "Session keys are unavailable; try again shortly.", reason="jwks_unavailable"
                ) from exc
            return  # keep the keys we have
        self.keys = found

    async def _fetch(self) -> dict[str, Any]:
        if self.file is not None:
            text = await asyncio.to_thread(Path(self.file).read_text, encoding="utf-8")
            doc = json.loads(text)
        else:
            assert self.url is not None
            timeout = aiohttp.ClientTimeout(total=5)
            async with self.client().get(self.url, timeout=timeout) as resp:
                if resp.status != 200:
                    raise ValueError(f"JWKS answered {resp.status}")
                raw = await resp.content.read(MAX_JWKS_BYTES + 1)
                if len(raw) > MAX_JWKS_BYTES:
                    raise ValueError("JWKS too large")
                doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("JWKS is not a JSON object")
        return doc


class SessionVerifier:
    """Raw JWT → :class:`Principal` (``auth_method="session"``), or 401."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self._jwks: JWKS | None = None
        self._jwks_source: tuple[str | None, str | None, float] | None = None
        # sub -> user id; users are never deleted, so only hits are cached (briefly).
        self._users: TTLCache[str, str] = TTLCache(maxsize=10_000, ttl=60)

    def jwks(self, cfg: SessionsConfig) -> JWKS:
        source = (cfg.jwks_file, cfg.jwks_url, cfg.jwks_cooldown)
        if self._jwks is None or self._jwks_source != source:  # first use, or a reload changed it
            self._jwks = JWKS(cfg, lambda: self.gw.client)
            self._jwks_source = source
        return self._jwks

    async def __call__(self, token: str) -> Principal:
        cfg = self.gw.config.sessions
        if cfg is None:
            raise _invalid("unknown_prefix", "The credential is malformed.")
        claims = await self.verify(cfg, token)
        user_id = await self._user(str(claims["sub"]))
        return Principal(auth_method="session", user_id=user_id)

    async def verify(self, cfg: SessionsConfig, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _invalid("jwt_malformed", "The credential is malformed.") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in cfg.algorithms:
            raise _invalid("jwt_alg")
        key: Any
        if alg in JWT_HMAC_ALGORITHMS:
            key = cfg.secret
        else:
            key = await self._public_key(cfg, alg, header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=cfg.audience,
                issuer=cfg.issuer,
                leeway=cfg.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise _invalid("jwt_expired", "The session has expired.") from None
        except jwt.InvalidAudienceError:
            raise _invalid("jwt_audience") from None
        except jwt.InvalidIssuerError:
            raise _invalid("jwt_issuer") from None
        except jwt.InvalidSignatureError:
            raise _invalid("jwt_signature") from None
        except jwt.PyJWTError:
            raise _invalid("jwt_invalid") from None
        if cfg.roles and claims.get("role") not in cfg.roles:
            raise _invalid("jwt_role")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise _invalid("jwt_sub")
        return claims

    async def _public_key(self, cfg: SessionsConfig, alg: str, kid: Any) -> Any:
        if not isinstance(kid, str) or not kid:
            raise _invalid("jwt_kid")
        jwk = await self.jwks(cfg).get(kid)
        if jwk is None:
            raise _invalid("jwt_unknown_kid")
        if jwk.get("kty") != _KTY[alg[:2]] or jwk.get("alg", alg) != alg:
            raise _invalid("jwt_key_mismatch")
        if alg in _CRV and jwk.get("crv") != _CRV[alg]:
            raise _invalid("jwt_key_mismatch")
        if jwk.get("use", "sig") != "sig":
            raise _invalid("jwt_key_mismatch")
        try:
            return jwt.PyJWK(jwk, algorithm=alg).key
        except jwt.PyJWTError:
            raise _invalid("jwt_key_mismatch") from None

    async def _user(self, sub: str) -> str:
        hit = self._users.get(sub)
        if hit is not None:
            return hit
        user = await self.gw.health.call(lambda: self.gw.store.get_user(sub), "user lookup")
        if user is None:
            raise _invalid("jwt_unknown_user")
        self._users[sub] = user.id
        return user.id


def install(gw: Gateway) -> None:
    gw.session_verifier = SessionVerifier(gw)
