"""The ``gateway`` command line as a user meets it in ``--help``, and how its modules depend.

The parser is walked the way argparse builds it (``_actions``, ``_SubParsersAction``: argparse has
no public API to enumerate subcommands), so a new command or flag without help fails here.
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import cli
from tests.support.served import free_port

GATEWAY = Path(cli.__file__).resolve().parents[1]


def parsers(
    p: argparse.ArgumentParser, path: str = "gateway"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from parsers(child, f"{path} {name}")


def test_every_command_flag_and_argument_has_help_text() -> None:
    missing = []
    for path, p in parsers(cli.build_parser()):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                # Each subcommand's one-line help, listed under its parent's --help.
                helped = {a.dest for a in action._choices_actions if a.help}
                missing += [f"{path} {name}" for name in action.choices if name not in helped]
            elif not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_the_walk_sees_every_command() -> None:
    """The test above would pass vacuously if the walk missed the subcommands."""
    paths = {path for path, _ in parsers(cli.build_parser())}
    assert {"gateway serve", "gateway token create", "gateway oauth-grant revoke"} <= paths
    assert {"gateway migrate-store", "gateway audit list", "gateway user login-link"} <= paths


@pytest.mark.parametrize(
    ("var", "value", "argv", "dest", "parsed"),
    [
        ("GATEWAY_CONFIG", "/etc/gw.yaml", ["check"], "config", "/etc/gw.yaml"),
        ("GATEWAY_LISTEN", "0.0.0.0:9999", ["serve"], "listen", "0.0.0.0:9999"),
        ("GATEWAY_WORKERS", "3", ["serve"], "workers", 3),
        (
            "GATEWAY_DASHBOARD_URL",
            "https://x.example",
            ["user", "login-link", "a"],
            "base_url",
            "https://x.example",
        ),
        (
            "GATEWAY_MIGRATE_FROM",
            "sqlite:///a.db",
            ["migrate-store", "--to", "sqlite:///b.db"],
            "source",
            "sqlite:///a.db",
        ),
    ],
)
def test_server_flags_default_to_their_environment_variable_and_say_so(
    monkeypatch: pytest.MonkeyPatch,
    var: str,
    value: str,
    argv: list[str],
    dest: str,
    parsed: object,
) -> None:
    monkeypatch.setenv(var, value)
    parser = cli.build_parser()
    assert getattr(parser.parse_args(argv), dest) == parsed
    helps = [a.help or "" for _, p in parsers(parser) for a in p._actions if a.dest == dest]
    assert any(f"env {var}" in h for h in helps), helps


def test_a_bad_gateway_workers_is_a_usage_error_of_serve_only(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_WORKERS", "many")
    assert cli.build_parser().parse_args(["check"]).command == "check"  # other commands unaffected
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["serve"])
    assert exc.value.code == 2
    assert "argument --workers: invalid int value: 'many'" in capsys.readouterr().err


def test_the_console_script_is_the_cli_packages_main() -> None:
    (entry,) = [
        e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "gateway"
    ]
    assert entry.load() is cli.main


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def test_nothing_but_the_entry_point_imports_the_cli() -> None:
    """The CLI sits on top: a feature importing it back (as ``oauth/cli.py`` did with
    ``gateway.cli._table``) would be an import cycle again."""
    offenders = [
        str(path.relative_to(GATEWAY.parent))
        for path in GATEWAY.rglob("*.py")
        if "cli" not in path.relative_to(GATEWAY).parts[:1]
        and path.name != "__main__.py"
        and any(m == "gateway.cli" or m.startswith("gateway.cli.") for m in imports_of(path))
    ]
    assert offenders == []


def test_command_modules_import_no_private_name_across_modules() -> None:
    private = [
        f"{path.name}: {m}"
        for path in (GATEWAY / "cli").glob("*.py")
        for m in imports_of(path)
        if m.startswith("gateway.")
        and m.rsplit(".", 1)[-1].startswith("_")
        and not m.rsplit(".", 1)[-1].startswith("__")
    ]
    assert private == []


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_a_store_that_cannot_be_opened_is_one_error_line_and_exit_1(
    tmp_path: Path, json_flag: list[str]
) -> None:
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(
        f'store: "postgresql://postgres@127.0.0.1:{free_port()}/test"\n'
        'upstreams: {api: "http://127.0.0.1:9"}\nroutes: []\n'
    )
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "--config", str(cfg), *json_flag, "workspace", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    if json_flag:
        error = json.loads(line)["error"]
        assert error["code"] == "STORE_UNAVAILABLE"
        assert error["message"].startswith("cannot open the PostgreSQL store")
    else:
        assert line.startswith("gateway: cannot open the PostgreSQL store: ")
    assert out.stdout == ""
