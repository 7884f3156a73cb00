"""The routes of the authorization server's built-in endpoints, from the ``oauth:`` section.

They are ordinary routes (public ones authenticate the client or the signed-in user themselves), so
deny-by-default, path normalization and the shadowing checks apply to them as to any other; the
config loader appends them after the configured routes. :mod:`gateway.features.oauth.http` serves them.
"""

from __future__ import annotations

from gateway.config.runtime_features import OAuthConfig
from gateway.config.runtime_routing import Route

__all__ = ["MAX_BODY", "oauth_routes"]

# Request bodies of the OAuth endpoints are small forms: the routes' limit and the reader's.
MAX_BODY = 64 * 1024
_USER = frozenset({"session", "token"})
_NONE: frozenset[str] = frozenset()


def oauth_routes(oauth: OAuthConfig, start: int) -> tuple[Route, ...]:
    """The endpoints' routes, numbered from ``start`` (their place in the route table)."""
    p = oauth.paths
    get, post = frozenset({"GET", "HEAD"}), frozenset({"POST"})
    specs: list[tuple[str, str, frozenset[str], bool, str, frozenset[str]]] = [
        ("oauth-consent", p.consent, frozenset({"GET", "POST"}), True, "oauth_consent", _NONE),
        ("oauth-token", p.token, post, True, "oauth_token", _NONE),
        ("oauth-revoke", p.revoke, post, True, "oauth_revoke", _NONE),
        ("oauth-introspect", p.introspect, post, True, "oauth_introspect", _NONE),
        ("oauth-metadata", p.metadata, get, True, "oauth_metadata", _NONE),
        # A user's own grants: user credentials only (an OAuth app must not manage its grants).
        ("oauth-grants", p.grants, get, False, "oauth_grants", _USER),
        (
            "oauth-grant",
            p.grants.rstrip("/") + "/{grantId}",
            frozenset({"DELETE"}),
            False,
            "oauth_grants",
            _USER,
        ),
    ]
    return tuple(
        Route(
            name=name,
            path=path,
            methods=methods,
            public=public,
            handler=handler,
            auth_methods=auth,
            max_body_bytes=MAX_BODY,
            index=start + i,
        )
        for i, (name, path, methods, public, handler, auth) in enumerate(specs)
    )
