"""The OAuth 2.0 authorization server (RFC 6749 + PKCE RFC 7636, revocation RFC 7009, introspection
RFC 7662, metadata RFC 8414) for third-party apps acting for a user.

    pkce.py       code verifier / challenge rules (S256 only)
    redirects.py  redirect URI registration and matching (exact; loopback port-agnostic, RFC 8252)
    records.py    the records and their tables, registered with the store's table registry
    store.py      the OAuthStore protocol; sqlstore.py its one implementation on any core store
    routes.py     the endpoints' routes, from the ``oauth:`` section
    service.py    OAuthService, every decision, one base class per job:
      apps.py           shared state; apps; a user's grants (list, revoke); their JSON views
      consent.py        the authorization request, consent → grant and code
      issuance.py       client authentication, the code and refresh grants, rotation
      introspection.py  revocation and introspection
      params.py         one parameter out of a request's parameters
    http.py       the built-in endpoints on the proxy listener (token, revoke, …, HANDLERS)
      consentpage.py    the consent page
      wire.py           reading bodies, queries and Basic credentials; no-store headers
    admin.py      admin API routes (the ``gateway oauth-app`` / ``oauth-grant`` commands are
                  gateway/cli/oauth.py)
"""
