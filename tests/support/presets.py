"""Start a REAL preset file from ``config/`` in front of loopback upstreams, for the preset tests.

The preset is loaded exactly as shipped; only the environment variables it documents are set
(``GATEWAY_STORE`` to the test's SQLite file, ``UPSTREAM_URL`` / ``SANDBOX_UPSTREAM_URL`` to
recording upstreams on 127.0.0.1), so a test passing here means the file itself does what it says.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.support.calls import call
from tests.support.harness import RunningGateway, start_gateway

ROOT = Path(__file__).resolve().parents[2]
PRESETS = ROOT / "config"
PRESET_ENV = (
    "GATEWAY_HOST",
    "GATEWAY_PORT",
    "GATEWAY_ADMIN_PORT",
    "GATEWAY_METRICS_PORT",
    "GATEWAY_STORE",
    "UPSTREAM_URL",
    "SANDBOX_UPSTREAM_URL",
    "SPEDY_HOST_SUFFIX",
    "SUPABASE_URL",
    "SPEDY_AUTH_URL",
    "GATEWAY_DASHBOARD_SECRET",
)


def preset_path(name: str) -> Path:
    return PRESETS / f"{name}.yaml"


@asynccontextmanager
async def run_preset(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str
) -> AsyncIterator[RunningGateway]:
    """The preset ``name`` running on loopback with ``env`` (and nothing else) set."""
    for var in PRESET_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GATEWAY_STORE", f"sqlite:///{tmp_path}/{name}.db")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    gw = await start_gateway(preset_path(name))
    try:
        yield gw
    finally:
        await gw.stop()


def answers(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: Mapping[str, str],
    expected: int,
) -> Callable[[], Awaitable[bool]]:
    """A check for :func:`tests.support.harness.eventually`: the call answers ``expected``."""

    async def check() -> bool:
        return (await call(http, method, url, headers))[0] == expected

    return check


def cli(
    preset: str, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m gateway --config config/<preset>.yaml --json ARGS`` in a subprocess."""
    full_env = {k: v for k, v in os.environ.items() if k not in PRESET_ENV}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "gateway", "--config", str(preset_path(preset)), "--json", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
        cwd=ROOT,
        check=False,
    )
