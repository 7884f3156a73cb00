"""All four presets: `gateway check` passes on each, and each reads its ports, store and upstream
URLs from the environment with working defaults."""

from __future__ import annotations

import json

import pytest

from gateway import config as config_mod
from tests.support.presets import PRESET_ENV, cli, preset_path

PRESETS = ("velocity", "velaflows", "spedy", "velt")


@pytest.mark.parametrize("preset", PRESETS)
def test_gateway_check_passes_with_defaults_and_no_warnings(preset: str) -> None:
    env = {
        "GATEWAY_DASHBOARD_SECRET": "a-secret-of-sixteen-plus",
        "SANDBOX_UPSTREAM_URL": "http://127.0.0.1:9001",  # VelaFlows' sk_test_ upstream
    }
    out = cli(preset, "check", env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["ok"] is True
    assert result["warnings"] == []
    assert result["routes"] > 0


def test_check_warns_when_the_sandbox_upstream_resolves_to_nothing() -> None:
    out = cli("velaflows", "check", env={"GATEWAY_DASHBOARD_SECRET": "a-secret-of-sixteen-plus"})
    assert out.returncode == 0, out.stderr  # a warning, not an error: live tokens still work
    (warning,) = json.loads(out.stdout)["warnings"]
    assert "upstreams.velaflows.environments.test: resolves to nothing" in warning
    assert "SANDBOX_UPSTREAM_URL" in warning and "sk_test_" in warning
    assert "ENVIRONMENT_UNAVAILABLE" in warning
    assert warning in out.stderr


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_reads_ports_store_and_upstreams_from_the_environment(
    preset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in PRESET_ENV:
        monkeypatch.delenv(var, raising=False)
    default = config_mod.load(preset_path(preset))
    assert (default.proxy.port, default.store) == (8080, f"sqlite:///{preset}.db")
    assert default.admin is not None and default.admin.port == 8081
    assert default.metrics is not None and default.metrics.port == 9090

    env = {
        "GATEWAY_PORT": "18080",
        "GATEWAY_ADMIN_PORT": "18081",
        "GATEWAY_METRICS_PORT": "19090",
        "GATEWAY_STORE": "sqlite:////tmp/elsewhere.db",
        "UPSTREAM_URL": "http://10.0.0.7:7000",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    cfg = config_mod.load(preset_path(preset))
    assert cfg.proxy.port == 18080
    assert cfg.admin is not None and cfg.admin.port == 18081
    assert cfg.metrics is not None and cfg.metrics.port == 19090
    assert cfg.store == "sqlite:////tmp/elsewhere.db"
    (upstream,) = cfg.upstreams.values()
    assert upstream.url == "http://10.0.0.7:7000"
    assert upstream.url_for("live") == "http://10.0.0.7:7000"


def test_velaflows_sandbox_comes_from_sandbox_upstream_url(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in PRESET_ENV:
        monkeypatch.delenv(var, raising=False)
    cfg = config_mod.load(preset_path("velaflows"))
    assert cfg.upstreams["velaflows"].url_for("test") is None  # no sandbox by default
    monkeypatch.setenv("SANDBOX_UPSTREAM_URL", "http://10.0.0.8:7001")
    cfg = config_mod.load(preset_path("velaflows"))
    assert cfg.upstreams["velaflows"].url_for("test") == "http://10.0.0.8:7001"


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_starts_with_its_statement_list(preset: str) -> None:
    text = preset_path(preset).read_text()
    header = text.split("\n\n", 1)[0]
    assert all(line.startswith("#") for line in header.splitlines())
    assert "makes true" in header and "served by" in header.lower() and "cannot" in header
