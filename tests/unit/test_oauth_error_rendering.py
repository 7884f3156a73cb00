"""Issue 20: OAuth's errors are GatewayErrors, and gateway.edge.responses renders them in RFC 6749
§5.2's envelope whatever envelope the config chose; one place renders every error."""

from __future__ import annotations

import json

import pytest

from gateway.core.errors import GatewayError, InvalidClient, OAuthError
from gateway.edge.responses import error_response


@pytest.mark.parametrize("envelope", ["default", "velt"])
def test_an_oauth_error_keeps_rfc6749s_envelope_under_any_configured_one(envelope: str) -> None:
    err = OAuthError("invalid_grant", "The authorization code has expired.")
    assert isinstance(err, GatewayError) and (err.code, err.reason) == (
        "OAUTH_ERROR",
        "invalid_grant",
    )
    r = error_response(err, "req-1", envelope)
    assert r.status == 400 and r.text is not None
    assert json.loads(r.text) == {
        "error": "invalid_grant",
        "error_description": "The authorization code has expired.",
    }
    assert (r.headers["Cache-Control"], r.headers["Pragma"]) == ("no-store", "no-cache")
    assert "WWW-Authenticate" not in r.headers


def test_a_failed_client_authentication_challenges_the_way_the_client_tried() -> None:
    basic = error_response(
        InvalidClient("Client authentication failed.", basic=True), "r", "default"
    )
    bearer = error_response(
        InvalidClient("Client authentication failed.", basic=False), "r", "velt"
    )
    assert basic.status == bearer.status == 401
    assert basic.headers["WWW-Authenticate"] == 'Basic realm="oauth"'
    assert bearer.headers["WWW-Authenticate"].startswith("Bearer realm=")
