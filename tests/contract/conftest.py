"""Fixtures shared by the contract suites: each test runs once against a real SQLite file and once
against a fresh PostgreSQL schema (dropped afterwards; without GATEWAY_TEST_POSTGRES the PostgreSQL
half skips locally and fails in CI)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.store import Store, open_store
from tests.support.stores import fresh_postgres_schema


@pytest.fixture(params=["sqlite", "postgres"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/contract.db"
    else:
        async with fresh_postgres_schema() as url:
            yield url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """The store at ``store_url``, opened (migrated) and empty; closed afterwards."""
    s = open_store(store_url)
    await s.open()
    yield s
    await s.close()
