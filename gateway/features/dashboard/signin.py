"""Who is signed in to the dashboard: sign-in links, the sign-in cookie, CSRF tokens.

"Sign-in" is the dashboard's own; a *session JWT* is :mod:`gateway.features.sessionjwt`'s (the
app's sign-in, accepted here too). The sign-in cookie's names on the wire and in the config (``aud``
``dashboard-session``, the ``session`` key label, ``dashboard.session_ttl``) predate that word and
stay as they are.

* A **sign-in link** (``gateway user login-link EMAIL``) carries a short HS256 JWT (``aud``
  ``dashboard-login``, ``sub`` the user id, ``exp`` ≤ 1 h, a random ``jti``). Its ``jti`` is spent
  in the store (:meth:`Store.use_nonce`) when the link is used, so it works once, in any worker.
* The **sign-in cookie** (:data:`COOKIE`) is another HS256 JWT (``aud`` ``dashboard-session``),
  HttpOnly, SameSite=Strict, Secure when the page is served over https.
* A **session JWT** from the app's own sign-in (issue 5's ``gw.session_verifier``) is accepted too,
  from the cookie ``dashboard.session_jwt_cookie``: :func:`signed_in` is the one place that decides.
* The **CSRF token** is an HMAC of the sign-in credential: per sign-in, never stored, and useless
  without the HttpOnly cookie it is bound to.

Every key is derived from ``dashboard.secret`` (or ``pepper``) with a distinct label, so a value
signed for one purpose never verifies for another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from aiohttp import web

from gateway.config import DashboardConfig
from gateway.core.errors import AuthenticationError, LoginLinkInvalid
from gateway.core.lazy import lazy_module
from gateway.edge.headerpolicy import DASHBOARD_SIGNIN_COOKIE, is_trusted_peer
from gateway.store.base import User

if TYPE_CHECKING:
    from gateway.app import Gateway


if TYPE_CHECKING:
    import jwt
else:
    jwt = lazy_module("jwt")  # first use imports it (gateway/core/lazy.py)

__all__ = [
    "COOKIE",
    "MAX_LINK_TTL",
    "Keys",
    "SignedIn",
    "is_https",
    "login_link",
    "mint_signin_cookie",
    "redeem_link",
    "signed_in",
    "verify_link",
]

COOKIE = DASHBOARD_SIGNIN_COOKIE  # the edge strips it from every upstream request
MAX_LINK_TTL = 3600.0
_ISSUER = "gateway-dashboard"
_LINK_AUD = "dashboard-login"
_SIGNIN_AUD = "dashboard-session"
_ALGS = ["HS256"]


@dataclass(frozen=True, slots=True)
class Keys:
    link: bytes
    signin: bytes
    csrf: bytes

    @classmethod
    def derive(cls, cfg: DashboardConfig) -> Keys:
        root = cfg.secret.encode()

        def k(label: str) -> bytes:
            return hmac.new(root, f"gateway.dashboard.{label}.v1".encode(), hashlib.sha256).digest()

        # "session" is the label the sign-in key has always had: a new one would sign everyone out.
        return cls(link=k("login-link"), signin=k("session"), csrf=k("csrf"))


def login_link(
    cfg: DashboardConfig, base_url: str, user: User, ttl: float, now: float | None = None
) -> tuple[str, float]:
    """A signed single-use sign-in URL for ``user`` and its expiry time."""
    if not 0 < ttl <= MAX_LINK_TTL:
        raise ValueError(f"a sign-in link lives at most {int(MAX_LINK_TTL)} seconds")
    now = time.time() if now is None else now
    exp = now + ttl
    claims = {
        "iss": _ISSUER,
        "aud": _LINK_AUD,
        "sub": user.id,
        "iat": int(now),
        "exp": exp,
        "jti": secrets.token_urlsafe(16),
    }
    value = jwt.encode(claims, Keys.derive(cfg).link, algorithm="HS256")
    return f"{base_url.rstrip('/')}{cfg.path}/login?{urlencode({'t': value})}", exp


def verify_link(cfg: DashboardConfig, value: str) -> tuple[str, str, float]:
    """``(user id, jti, exp)`` of a well-signed, unexpired link; :class:`LoginLinkInvalid` otherwise.

    Does not spend the link: :func:`redeem_link` does, on the explicit sign-in POST, so a mail
    scanner that prefetches the URL cannot burn it.
    """
    try:
        claims = jwt.decode(
            value,
            Keys.derive(cfg).link,
            algorithms=_ALGS,
            audience=_LINK_AUD,
            issuer=_ISSUER,
            options={"require": ["exp", "sub", "jti", "aud", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise LoginLinkInvalid("This sign-in link has expired.", reason="link_expired") from None
    except jwt.PyJWTError:
        raise LoginLinkInvalid(reason="link_invalid") from None
    return str(claims["sub"]), str(claims["jti"]), float(claims["exp"])


async def redeem_link(gw: Gateway, cfg: DashboardConfig, value: str) -> User:
    """Verify and spend a sign-in link; the user it signs in."""
    user_id, jti, exp = verify_link(cfg, value)
    if not await gw.store.use_nonce(f"login:{jti}", exp + 60):
        raise LoginLinkInvalid("This sign-in link was already used.", reason="link_used")
    user = await gw.store.get_user(user_id)
    if user is None or user.id != user_id:
        raise LoginLinkInvalid(reason="link_user_gone")
    return user


def mint_signin_cookie(cfg: DashboardConfig, user: User, now: float | None = None) -> str:
    """The value of the sign-in cookie (:data:`COOKIE`) for ``user``."""
    now = time.time() if now is None else now
    claims = {
        "iss": _ISSUER,
        "aud": _SIGNIN_AUD,
        "sub": user.id,
        "iat": int(now),
        "exp": now + cfg.session_ttl,
        "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode(claims, Keys.derive(cfg).signin, algorithm="HS256")


def _signin_user_id(cfg: DashboardConfig, value: str) -> str | None:
    try:
        claims = jwt.decode(
            value,
            Keys.derive(cfg).signin,
            algorithms=_ALGS,
            audience=_SIGNIN_AUD,
            issuer=_ISSUER,
            options={"require": ["exp", "sub", "aud", "iss"]},
        )
    except jwt.PyJWTError:
        return None
    return str(claims["sub"])


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: User
    csrf: str
    method: str  # "link" (our sign-in cookie) | "session_jwt"


def _csrf_for(cfg: DashboardConfig, credential: str) -> str:
    mac = hmac.new(Keys.derive(cfg).csrf, credential.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")


async def signed_in(request: web.Request, gw: Gateway) -> SignedIn | None:
    """The signed-in user, from our sign-in cookie or (when the gateway has a session verifier)
    a session JWT cookie; ``None`` when neither is present and valid, or the user is gone."""
    cfg = gw.runtime.config.dashboard
    if cfg is None:
        return None
    user_id: str | None = None
    credential = request.cookies.get(COOKIE)
    method = "link"
    if credential:
        user_id = _signin_user_id(cfg, credential)
    if user_id is None and gw.session_verifier is not None:
        credential = request.cookies.get(cfg.session_jwt_cookie)
        if credential:
            try:
                principal = await gw.session_verifier(credential)
            except AuthenticationError:
                principal = None
            user_id = principal.user_id if principal is not None else None
            method = "session_jwt"
    if user_id is None or not credential:
        return None
    user = await gw.store.get_user(user_id)
    if user is None or user.id != user_id:
        return None
    return SignedIn(user=user, csrf=_csrf_for(cfg, credential), method=method)


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def is_https(request: web.Request, gw: Gateway) -> bool:
    """Whether the browser reached us over https (directly, or through a trusted proxy)."""
    if request.secure:
        return True
    cfg = gw.runtime.config
    if cfg.dashboard is not None and (cfg.dashboard.public_url or "").startswith("https://"):
        return True
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    if forwarded != "https" or not request.remote:
        return False
    return is_trusted_peer(request.remote, cfg.trusted_proxies)
