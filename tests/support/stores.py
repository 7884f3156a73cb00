"""Real stores for tests: a SQLite file, or a fresh PostgreSQL schema dropped afterwards.

PostgreSQL comes from GATEWAY_TEST_POSTGRES and Redis from GATEWAY_TEST_REDIS (``.ci/run`` sets
both). When one is unset, :func:`probe_local_backends` (run once per test session by
``tests/conftest.py``) tries the default local address and uses it when it answers, so a fresh
clone on a machine with both running skips nothing; otherwise those tests skip locally and fail in
CI (GATEWAY_REQUIRE_ALL=1). Each use gets its own schema (or Redis key prefix), so test runs,
parallel workers and tests never see each other's rows, and the schema is dropped when the test
ends.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import redis

from tests.support.require import env_or_skip

# Variable -> (what, the default local address probed when the variable is unset).
BACKENDS = {
    "GATEWAY_TEST_POSTGRES": ("PostgreSQL", "postgresql://postgres@127.0.0.1:5432/test"),
    "GATEWAY_TEST_REDIS": ("Redis", "redis://127.0.0.1:6379/0"),
}
PROBE_TIMEOUT = 2.0
# A fixed "now" for records the contract suites write (timestamps compare exactly on both backends).
T0 = 1_700_000_000.0


def postgres_url_or_skip() -> str:
    return env_or_skip("GATEWAY_TEST_POSTGRES", "PostgreSQL")


def _answers(var: str, url: str) -> bool:
    """Whether the backend at ``url`` completes a real exchange (a login, a PING), not just a TCP
    accept: a port held by something else must not turn into failing tests."""
    try:
        if var == "GATEWAY_TEST_POSTGRES":

            async def login() -> None:
                conn = await asyncpg.connect(url, timeout=PROBE_TIMEOUT)
                await conn.close()

            asyncio.run(login())
        else:
            client = redis.Redis.from_url(
                url, socket_connect_timeout=PROBE_TIMEOUT, socket_timeout=PROBE_TIMEOUT
            )
            try:
                client.ping()
            finally:
                client.close()
    except (OSError, asyncpg.PostgresError, redis.RedisError, TimeoutError):
        return False
    return True


def probe_local_backends() -> str:
    """Fill each unset backend variable with its default local address when that answers.

    Returns one line saying which backends run (and from where) and which are skipped.
    """
    running: list[str] = []
    skipped: list[str] = []
    for var, (what, default) in BACKENDS.items():
        if os.environ.get(var):
            running.append(f"{what} ({var})")
        elif _answers(var, default):
            os.environ[var] = default  # inherited by xdist workers and served subprocesses
            running.append(f"{what} ({default}, probed)")
        else:
            skipped.append(f"{what} (nothing answers at {default}; set {var})")
    return (
        f"backends: running {', '.join(running) or 'none'}; skipped {', '.join(skipped) or 'none'}"
    )


@asynccontextmanager
async def fresh_postgres_schema() -> AsyncIterator[str]:
    """A store URL pointing at a brand-new schema; the schema is dropped afterwards."""
    base = postgres_url_or_skip()
    schema = f"gwtest_{secrets.token_hex(6)}"
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}schema={schema}"
    finally:
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()
