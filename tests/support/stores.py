"""Real stores for tests: a SQLite file, or a fresh PostgreSQL schema dropped afterwards.

PostgreSQL comes from GATEWAY_TEST_POSTGRES (``.ci/run`` sets it); without it these tests skip
locally and fail in CI (GATEWAY_REQUIRE_ALL=1). Each use gets its own schema, so test runs and
tests never see each other's rows, and the schema is dropped when the test ends.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from tests.support.require import env_or_skip

# A fixed "now" for records the contract suites write (timestamps compare exactly on both backends).
T0 = 1_700_000_000.0


def postgres_url_or_skip() -> str:
    return env_or_skip("GATEWAY_TEST_POSTGRES", "PostgreSQL")


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
