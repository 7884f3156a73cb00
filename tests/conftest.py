"""Fixtures: a real upstream and a gateway on loopback ports over a real SQLite file.

Before any test, PostgreSQL and Redis are probed at their default local addresses when their
variables are unset (tests/support/stores.py), and the run's header says which backends run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pytest import StashKey

from tests.support.harness import RunningGateway, Upstream, start_gateway, write_config
from tests.support.oauth import JWKSServer
from tests.support.stores import probe_local_backends

_BACKENDS = StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    # Once per run, in the controller: xdist workers start later and inherit the variables it set.
    if not hasattr(config, "workerinput"):
        config.stash[_BACKENDS] = probe_local_backends()


def pytest_sessionstart(session: pytest.Session) -> None:
    # Written directly (not a report header) so it shows under -q too: one line, every run.
    line = session.config.stash.get(_BACKENDS, None)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if line is not None and reporter is not None:
        reporter.write_line(line)


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
