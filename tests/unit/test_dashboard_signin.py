"""Dashboard sign-in links and sign-in cookies: signed, scoped to one purpose, expiring."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from gateway.config import DashboardConfig
from gateway.core.errors import LoginLinkInvalid
from gateway.features.dashboard import signin
from gateway.store.base import User

CFG = DashboardConfig(secret="a-dashboard-secret-of-some-length")
ANN = User(id="usr_ann", email="ann@example.com", name=None, created_at=0.0)


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["t"][0]


def test_a_link_names_its_user_and_expires() -> None:
    url, exp = signin.login_link(CFG, "https://app.example.com/", ANN, 600)
    assert url.startswith("https://app.example.com/settings/api-keys/login?t=")
    user_id, jti, link_exp = signin.verify_link(CFG, token_of(url))
    assert (user_id, link_exp) == ("usr_ann", exp) and len(jti) >= 20
    assert abs(exp - time.time() - 600) < 5
    old, _ = signin.login_link(CFG, "http://x", ANN, 60, now=time.time() - 61)
    with pytest.raises(LoginLinkInvalid, match="expired"):
        signin.verify_link(CFG, token_of(old))


def test_links_are_short_lived_by_construction() -> None:
    with pytest.raises(ValueError):
        signin.login_link(CFG, "http://x", ANN, signin.MAX_LINK_TTL + 1)


def test_a_link_is_not_a_signin_cookie_and_a_signin_cookie_is_not_a_link() -> None:
    url, _ = signin.login_link(CFG, "http://x", ANN, 60)
    link = token_of(url)
    cookie = signin.mint_signin_cookie(CFG, ANN)
    assert signin._signin_user_id(CFG, cookie) == "usr_ann"
    assert signin._signin_user_id(CFG, link) is None  # other key, other audience
    with pytest.raises(LoginLinkInvalid):
        signin.verify_link(CFG, cookie)


def test_forged_or_foreign_values_are_refused() -> None:
    other = DashboardConfig(secret="another-secret-another-secret")
    url, _ = signin.login_link(other, "http://x", ANN, 60)
    with pytest.raises(LoginLinkInvalid):
        signin.verify_link(CFG, token_of(url))
    claims = jwt.decode(signin.mint_signin_cookie(CFG, ANN), options={"verify_signature": False})
    claims["sub"] = "usr_admin"
    unsigned = jwt.encode(claims, key=None, algorithm="none")  # type: ignore[arg-type]
    assert signin._signin_user_id(CFG, unsigned) is None
    assert signin._signin_user_id(other, signin.mint_signin_cookie(CFG, ANN)) is None


def test_csrf_tokens_are_per_signin() -> None:
    a, b = signin.mint_signin_cookie(CFG, ANN), signin.mint_signin_cookie(CFG, ANN)
    ta, tb = signin._csrf_for(CFG, a), signin._csrf_for(CFG, b)
    assert ta != tb and ta == signin._csrf_for(CFG, a)
    assert signin.csrf_ok(ta, ta) and not signin.csrf_ok(ta, tb)
    assert not signin.csrf_ok(ta, None) and not signin.csrf_ok(ta, "")
