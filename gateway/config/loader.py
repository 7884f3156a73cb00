"""Loading is one step, :func:`load`: read YAML, substitute ``${VAR}`` / ``${VAR:-default}`` in
string scalars (never in the raw text, so an env value cannot inject YAML), validate the tree into
:class:`~gateway.config.document.Document`, then hand it to :func:`~gateway.config.build.build`
for the rules that span sections and the runtime :class:`~gateway.config.runtime.Config`.

Every problem is collected before anything is refused: pydantic reports every bad key at once; the
keys it refused are then set aside (their defaults apply) so the rules across sections still run on
the rest, as the hand-written reader did. :class:`ConfigError` carries all of them, so ``gateway
check`` reports everything at once and a reload can refuse a bad file while the old config serves.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.config.build import Positions, build
from gateway.config.document import (
    LENIENT,
    Document,
)
from gateway.config.problems import ConfigError, Problem, problems_from
from gateway.config.runtime import (
    Config,
)

__all__ = ["load", "load_text"]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load(path: str | os.PathLike[str]) -> Config:
    """Read and validate the config file at ``path``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [Problem("", f"cannot be read: {exc.strerror}")]) from None
    return load_text(text, str(p))


def load_text(text: str, source: str = "<string>") -> Config:
    """Parse and validate config text; raise :class:`ConfigError` listing every problem."""
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [Problem("", f"is not valid YAML: {exc}")]) from None
    problems: list[Problem] = []
    tree = _interpolate(tree, "", problems)
    if tree is None:
        tree = {}
    validated = _validate(tree, problems)
    if validated is not None:
        cfg = build(*validated, tree, source, problems)
    if any(not p.warning for p in problems) or validated is None:
        raise ConfigError(source, problems)
    return dataclasses.replace(cfg, warnings=tuple(problems))


def _interpolate(node: Any, path: str, problems: list[Problem]) -> Any:
    if isinstance(node, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            value = os.environ.get(name)
            if value is None or (value == "" and default is not None):
                if default is None:
                    problems.append(
                        Problem(path, f"environment variable {name} is not set", m.group(0))
                    )
                    return ""
                return default
            return value

        return _VAR.sub(sub, node)
    if isinstance(node, dict):
        return {
            k: _interpolate(v, f"{path}.{k}" if path else str(k), problems) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_interpolate(v, f"{path}[{i}]", problems) for i, v in enumerate(node)]
    return node


# -- validation that reports everything --------------------------------------------------------------


_DROP: Any = object()
# Lists whose entries are reported by position: when an entry is set aside, the rest keep theirs.
_NUMBERED = ("routes", "token_types", "rate_limits.rules")


def _validate(tree: Any, problems: list[Problem]) -> tuple[Document, Positions] | None:
    """The document, or ``None`` when it cannot be read at all; every problem lands in ``problems``.

    When pydantic refuses keys, they are set aside (defaults take their place; an entry missing a
    required key goes as a whole) and the rest is validated again, leniently (an emptied
    ``upstreams`` passes), so the rules across sections still run and are reported with the first
    round's problems. ``Positions`` maps what is left of a numbered list to the entries' places in
    the file, so those problems name the entry the user wrote.
    """
    try:
        doc = Document.model_validate(tree)
        return doc, {}
    except ValidationError as exc:
        problems.extend(problems_from(exc))
        errors = exc.errors(include_url=False)
    if not isinstance(tree, dict):
        return None
    pruned = copy.deepcopy(tree)
    pruned.setdefault("upstreams", {})
    positions = {name: list(range(len(_at(pruned, name)))) for name in _NUMBERED}
    for _ in range(8):
        for err in errors:
            loc = list(err["loc"])
            if err["type"] == "missing":  # a key cannot be removed: its mapping goes instead
                loc = loc[:-1]
            elif err["type"] == "config":  # a rule about one key of a mapping: that key goes
                loc += [int(p) if p.isdigit() else p for p in re.findall(r"\w+", err["ctx"]["at"])]
            if loc != ["upstreams"]:
                _remove(pruned, loc)
        for name in _NUMBERED:
            entries = _at(pruned, name)
            positions[name] = [
                p for p, e in zip(positions[name], entries, strict=False) if e is not _DROP
            ]
        pruned = _swept(pruned)
        try:
            return Document.model_validate(pruned, context=LENIENT), positions
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
    return None


def _at(tree: dict[str, Any], dotted: str) -> list[Any]:
    node: Any = tree
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, list) else []


def _remove(tree: Any, loc: list[int | str]) -> None:
    """Set aside the value at ``loc``, or the deepest value on the way there that exists (a string
    a validator turned into a mapping has no keys of its own to remove)."""
    parent: Any = None
    key: int | str = ""
    node: Any = tree
    for part in loc:
        inside = part in node if isinstance(node, dict) else _has_index(node, part)
        if not inside:
            break
        parent, key, node = node, part, node[part]
    if isinstance(parent, dict):
        del parent[key]
    elif isinstance(parent, list) and isinstance(key, int):
        parent[key] = _DROP


def _has_index(node: Any, part: int | str) -> bool:
    return isinstance(node, list) and isinstance(part, int) and part < len(node)


def _swept(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _swept(v) for k, v in node.items() if v is not _DROP}
    if isinstance(node, list):
        return [_swept(v) for v in node if v is not _DROP]
    return node
