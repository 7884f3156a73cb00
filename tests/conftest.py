"""Fixtures: a real upstream and a gateway on loopback ports over a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.harness import RunningGateway, Upstream, start_gateway, write_config
from tests.support.oauth import JWKSServer


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = Upstream()
    await up.start()
    yield up
    await up.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        yield s


GatewayFactory = Callable[..., Awaitable[RunningGateway]]


@pytest.fixture
async def make_gateway(tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    started: list[RunningGateway] = []

    async def factory(text_or_doc: str | dict[str, Any], **subs: Any) -> RunningGateway:
        subs.setdefault("store", f"sqlite:///{tmp_path}/gateway.db")
        path = write_config(tmp_path, text_or_doc, **subs)
        gw = await start_gateway(path)
        started.append(gw)
        return gw

    yield factory
    for gw in started:
        await gw.stop()


@pytest.fixture
async def jwks_server() -> AsyncIterator[JWKSServer]:
    s = JWKSServer()
    await s.start()
    yield s
    assert s.runner is not None
    await s.runner.cleanup()
