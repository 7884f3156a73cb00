"""Dashboard sign-in links and session cookies: signed, scoped to one purpose, expiring."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest

from gateway.config import DashboardConfig
from gateway.dashboard import sessions
from gateway.errors import LoginLinkInvalid
from gateway.store.base import User

CFG = DashboardConfig(secret="a-dashboard-secret-of-some-length")
ANN = User(id="usr_ann", email="ann@example.com", name=None, created_at=0.0)


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["t"][0]


def test_a_link_names_its_user_and_expires() -> None:
    url, exp = sessions.login_link(CFG, "https://app.example.com/", ANN, 600)
    assert url.startswith("https://app.example.com/settings/api-keys/login?t=")
    user_id, jti, link_exp = sessions.verify_link(CFG, token_of(url))
    assert (user_id, link_exp) == ("usr_ann", exp) and len(jti) >= 20
    assert abs(exp - time.time() - 600) < 5
    old, _ = sessions.login_link(CFG, "http://x", ANN, 60, now=time.time() - 61)
    with pytest.raises(LoginLinkInvalid, match="expired"):
        sessions.verify_link(CFG, token_of(old))


def test_links_are_short_lived_by_construction() -> None:
    with pytest.raises(ValueError):
        sessions.login_link(CFG, "http://x", ANN, sessions.MAX_LINK_TTL + 1)


def test_a_link_is_not_a_session_and_a_session_is_not_a_link() -> None:
    url, _ = sessions.login_link(CFG, "http://x", ANN, 60)
    link = token_of(url)
    session = sessions.mint_session(CFG, ANN)
    assert sessions._session_user_id(CFG, session) == "usr_ann"
    assert sessions._session_user_id(CFG, link) is None  # other key, other audience
    with pytest.raises(LoginLinkInvalid):
        sessions.verify_link(CFG, session)


def test_forged_or_foreign_values_are_refused() -> None:
    other = DashboardConfig(secret="another-secret-another-secret")
    url, _ = sessions.login_link(other, "http://x", ANN, 60)
    with pytest.raises(LoginLinkInvalid):
        sessions.verify_link(CFG, token_of(url))
    claims = jwt.decode(sessions.mint_session(CFG, ANN), options={"verify_signature": False})
    claims["sub"] = "usr_admin"
    unsigned = jwt.encode(claims, key=None, algorithm="none")  # type: ignore[arg-type]
    assert sessions._session_user_id(CFG, unsigned) is None
    assert sessions._session_user_id(other, sessions.mint_session(CFG, ANN)) is None


def test_csrf_tokens_are_per_session() -> None:
    a, b = sessions.mint_session(CFG, ANN), sessions.mint_session(CFG, ANN)
    ta, tb = sessions._csrf_for(CFG, a), sessions._csrf_for(CFG, b)
    assert ta != tb and ta == sessions._csrf_for(CFG, a)
    assert sessions.csrf_ok(ta, ta) and not sessions.csrf_ok(ta, tb)
    assert not sessions.csrf_ok(ta, None) and not sessions.csrf_ok(ta, "")
