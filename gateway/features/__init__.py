"""Features that plug into the request path or add endpoints, each installing itself through the
hooks listed in :mod:`gateway.extensions`: rate limits, allowed origins, metrics, traces, session JWTs,
self-service tokens, Velt's key endpoint, the leaked-token endpoint, external authorization, the
dashboard and the OAuth authorization server."""
