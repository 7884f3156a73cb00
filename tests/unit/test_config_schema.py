"""The JSON Schema of gateway.yaml (issue 20): generated from the config model, printed by
`gateway config-schema`, checked in as config/gateway.schema.json, and named by gateway.yaml and
every preset so editors complete and check keys."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema_rs
import pytest
import yaml

from gateway.config.schema import render

ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN = ROOT / "config" / "gateway.schema.json"
CONFIGS = [ROOT / "gateway.yaml", *sorted((ROOT / "config").glob("*.yaml"))]
LINE = "# yaml-language-server: $schema="


def test_checked_in_schema_is_the_one_the_model_generates() -> None:
    assert CHECKED_IN.read_text(encoding="utf-8") == render(), (
        "config/gateway.schema.json is stale: run "
        "`gateway config-schema > config/gateway.schema.json`"
    )


def test_config_schema_command_prints_it_without_a_config_file(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "config-schema"],
        cwd=tmp_path,  # no gateway.yaml here: the command must not need one
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == CHECKED_IN.read_text(encoding="utf-8")
    assert json.loads(out.stdout)["additionalProperties"] is False


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_names_the_schema_and_is_valid_under_it(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith(LINE), f"{path.name} lacks the yaml-language-server line"
    assert (path.parent / first.removeprefix(LINE)).resolve() == CHECKED_IN
    validator = jsonschema_rs.validator_for(json.loads(CHECKED_IN.read_text(encoding="utf-8")))
    errors = [f"{list(e.instance_path)}: {e.message}" for e in validator.iter_errors(_doc(path))]
    assert errors == []


def test_schema_flags_unknown_keys_and_wrong_types_as_an_editor_would() -> None:
    validator = jsonschema_rs.validator_for(json.loads(CHECKED_IN.read_text(encoding="utf-8")))
    doc = yaml.safe_load(
        """
upstreams: {api: "http://127.0.0.1:9000"}
routes: [{path: /a/**, colour: blue}]
limits: {max_headers: many}
oauth: {code_ttl: soon}
workspace: {source: cookie}
"""
    )
    flagged = {tuple(e.instance_path) for e in validator.iter_errors(doc)}
    assert ("routes", 0) in flagged  # unknown key
    assert ("limits", "max_headers") in flagged
    assert ("oauth",) in flagged  # an optional section: reported at the section (anyOf null)
    assert ("workspace", "source") in flagged
    ok = yaml.safe_load('upstreams: {api: "http://x"}\noauth: {code_ttl: 5m, access_token_ttl: 60}')
    assert list(validator.iter_errors(ok)) == []  # durations as numbers or 5m/1h/30d


def _doc(path: Path) -> object:
    return yaml.safe_load(path.read_text(encoding="utf-8"))
