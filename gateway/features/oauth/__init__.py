"""The OAuth 2.0 authorization server (RFC 6749 + PKCE RFC 7636, revocation RFC 7009, introspection
RFC 7662, metadata RFC 8414) for third-party apps acting for a user.

    pkce.py       code verifier / challenge rules (S256 only)
    redirects.py  redirect URI registration and matching (exact; loopback port-agnostic, RFC 8252)
    store.py      records and the OAuthStore protocol; sqlite.py / postgres.py its implementations
    service.py    every decision: apps, consent → code, token grants, rotation, revocation
    http.py       the built-in endpoints on the proxy listener (consent page, token, …)
    admin.py      admin API routes; cli.py the ``gateway oauth-app`` / ``oauth-grant`` commands
"""
