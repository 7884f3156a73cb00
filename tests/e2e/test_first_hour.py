"""What a new user meets in the first hour: a taken port, the CLI's output, the test backends.

Each runs the real ``gateway`` command in a subprocess, as a user types it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import __version__
from tests.support import stores
from tests.support.served import free_port

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """
listeners: {proxy: "127.0.0.1:%(port)d", admin: "127.0.0.1:%(admin)d", metrics: null}
store: "sqlite:///%(db)s"
token_types:
  - {name: live, prefix: gw_live_, kind: api_key}
  - {name: pat, prefix: gw_pat_, kind: pat, inherit_user_permissions: true}
scopes: {known: [items:read, items:write]}
roles: {member: [items:read]}
workspace: {source: token}
upstreams: {api: "http://127.0.0.1:9"}
routes:
  - {name: items, path: "/items/**", upstream: api, scopes: [items:read]}
"""


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port something else is listening on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def gateway(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=30,  # a hang fails the test instead of stalling the run
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        check=False,
    )


def write_config(tmp_path: Path, port: int, admin: int) -> Path:
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(CONFIG % {"port": port, "admin": admin, "db": tmp_path / "gw.db"})
    return cfg


@pytest.mark.parametrize("listener", ["proxy", "admin"])
def test_serve_on_a_taken_port_says_which_listener_in_one_line_and_exits_1(
    tmp_path: Path, busy_port: int, listener: str
) -> None:
    port, admin = (busy_port, free_port()) if listener == "proxy" else (free_port(), busy_port)
    out = gateway("--config", str(write_config(tmp_path, port, admin)), "serve")
    assert out.returncode == 1
    expected = f"gateway: the {listener} listener cannot listen on 127.0.0.1:{busy_port}: "
    assert out.stderr.strip().splitlines()[-1].startswith(expected), out.stderr
    assert "address already in use" in out.stderr
    assert "Traceback" not in out.stderr


def test_serve_with_workers_on_a_taken_port_exits_1_without_a_traceback(
    tmp_path: Path, busy_port: int
) -> None:
    cfg = write_config(tmp_path, free_port(), busy_port)  # worker 0's admin listener is taken
    out = gateway("--config", str(cfg), "serve", "--workers", "2")
    assert out.returncode == 1, out.stderr
    assert f"the admin listener cannot listen on 127.0.0.1:{busy_port}" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("which", ["--port", "--upstream-port"])
def test_demo_on_a_taken_port_says_so_and_exits_1_instead_of_hanging(
    tmp_path: Path, busy_port: int, which: str
) -> None:
    env = {
        "GATEWAY_PORT": str(free_port()),
        "GATEWAY_ADMIN_PORT": str(free_port()),
        "GATEWAY_METRICS_PORT": str(free_port()),
        "GATEWAY_STORE": f"sqlite:///{tmp_path}/demo.db",
    }
    other = "--upstream-port" if which == "--port" else "--port"
    out = gateway(
        "--config", "gateway.yaml", "demo", which, str(busy_port), other, str(free_port()), env=env
    )
    assert out.returncode == 1, out.stderr
    name = "proxy" if which == "--port" else "demo upstream"
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"gateway: the {name} listener cannot listen on 127.0.0.1:{busy_port}")
    assert "--port / --upstream-port" in line


def test_version() -> None:
    out = gateway("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"gateway {__version__}"


def test_token_list_and_show_print_scopes_as_text(tmp_path: Path) -> None:
    cfg = str(write_config(tmp_path, free_port(), free_port()))
    assert (
        gateway(
            "--config", cfg, "workspace", "create", "--name", "Acme", "--slug", "acme"
        ).returncode
        == 0
    )
    made = gateway(
        "--config", cfg, "--json", "token", "create", "--workspace", "acme", "--name", "ci",
        "--scope", "items:read", "--scope", "items:write",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    listed = gateway("--config", cfg, "token", "list", "--workspace", "acme")
    row = listed.stdout.splitlines()[1]
    assert "items:read items:write" in row and "[" not in row, listed.stdout
    shown = gateway("--config", cfg, "token", "show", json.loads(made.stdout)["id"])
    assert "scopes: items:read items:write" in shown.stdout.splitlines()


def test_token_create_without_scope_says_what_the_token_can_do(tmp_path: Path) -> None:
    cfg = str(write_config(tmp_path, free_port(), free_port()))
    gateway("--config", cfg, "workspace", "create", "--name", "Acme", "--slug", "acme")
    out = gateway("--config", cfg, "token", "create", "--workspace", "acme", "--name", "ci")
    assert out.returncode == 0, out.stderr
    assert "no --scope given" in out.stderr and "has no scopes" in out.stderr
    assert "items:read, items:write" in out.stderr  # what to pass instead
    gateway("--config", cfg, "user", "create", "--email", "ann@acme.test")
    gateway("--config", cfg, "member", "add", "--workspace", "acme", "--user", "ann@acme.test")
    pat = gateway(
        "--config", cfg, "token", "create", "--workspace", "acme", "--name", "p",
        "--type", "pat", "--user", "ann@acme.test",
    )  # fmt: skip
    assert pat.returncode == 0, pat.stderr
    assert "acts with ann@acme.test's current role" in pat.stderr
    scoped = gateway(
        "--config", cfg, "token", "create", "--workspace", "acme", "--name", "s", "--scope", "items:read"
    )  # fmt: skip
    assert scoped.returncode == 0 and "note:" not in scoped.stderr


def test_unset_backend_variables_are_probed_at_the_default_addresses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in stores.BACKENDS:
        monkeypatch.delenv(var, raising=False)
    # Redis's default address is replaced by a loopback port where nothing listens.
    dead = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setitem(stores.BACKENDS, "GATEWAY_TEST_REDIS", ("Redis", dead))
    line = stores.probe_local_backends()
    pg_default = stores.BACKENDS["GATEWAY_TEST_POSTGRES"][1]
    if os.environ.get("GATEWAY_TEST_POSTGRES") != pg_default:
        pytest.skip(f"no PostgreSQL answers at {pg_default}")
    assert line == (
        f"backends: running PostgreSQL ({pg_default}, probed); "
        f"skipped Redis (nothing answers at {dead}; set GATEWAY_TEST_REDIS)"
    )
    assert "GATEWAY_TEST_REDIS" not in os.environ
