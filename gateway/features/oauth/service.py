"""The authorization server, independent of HTTP: :class:`OAuthService` is the one object the
endpoints, the admin API, the CLI and the management layer call. Each of its jobs lives in its own
module and is a base class here:

    apps.py           AppRegistry: shared state; apps (register, delete); grants (list, revoke)
    consent.py        Consent: the authorization request, consent -> grant and code
    issuance.py       TokenIssuance: client authentication, the code and refresh grants
    introspection.py  Introspection: revocation (RFC 7009) and introspection (RFC 7662)

This module adds the RFC 8414 metadata, which describes all of them. Errors are
:class:`~gateway.core.errors.OAuthError` with RFC 6749 §5.2 codes, rendered by
:mod:`gateway.edge.responses` like every other error. Plaintext client secrets, codes and tokens
exist only in return values; the store gets their digests.
"""

from __future__ import annotations

from typing import Any

from gateway.features.oauth.consent import Consent
from gateway.features.oauth.introspection import Introspection
from gateway.features.oauth.issuance import TokenIssuance

__all__ = ["OAuthService"]


class OAuthService(Consent, TokenIssuance, Introspection):
    """Every decision of the authorization server (see the module docstring for where each is)."""

    # -- RFC 8414 ----------------------------------------------------------------------------------

    def metadata(self, issuer: str) -> dict[str, Any]:
        p = self.cfg.paths
        auth_methods = ["client_secret_basic", "client_secret_post", "none"]
        return {
            "issuer": issuer,
            "authorization_endpoint": issuer + p.consent,
            "token_endpoint": issuer + p.token,
            "revocation_endpoint": issuer + p.revoke,
            "introspection_endpoint": issuer + p.introspect,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "introspection_endpoint_auth_methods_supported": auth_methods,
            "scopes_supported": sorted(self.config.scopes.known),
        }
