"""The upstream client session: one shared aiohttp ClientSession per worker, built to relay, not browse."""

from __future__ import annotations

import aiohttp

__all__ = ["make_upstream_client"]


def make_upstream_client(limit: int = 0) -> aiohttp.ClientSession:
    """One shared session: pooled keep-alive, no cookie jar, no decompression, no added headers."""
    connector = aiohttp.TCPConnector(
        limit=limit, limit_per_host=0, keepalive_timeout=30, ttl_dns_cache=300
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        timeout=aiohttp.ClientTimeout(total=None),
    )
