"""What every layer shares: the error tree, the token format, the principal, the one authorization
decision (:mod:`.authz`), per-request state, durations and the expiring map. Nothing here knows about
aiohttp apps, the store backends or any feature."""
