"""What is wrong with a config file: :class:`Problem`, :class:`ConfigError`, and the translation of
pydantic's validation errors into problems.

Every problem names its key path (``routes[0].upstream``) and, where there is one, the value found
there, rendered as ``error: FILE: PATH: MESSAGE (got VALUE)`` — the style ``gateway check`` prints.
Validators of the model (:mod:`gateway.config.document` and its ``document_*`` section modules)
raise :func:`invalid` so their message reads the same as every other problem, and may point below
the key they check (``at``: a duplicate list entry).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

__all__ = ["ConfigError", "Problem", "Report", "invalid", "key_path", "problems_from"]

MISSING: Any = object()

# pydantic's error types, said the way the config reader has always said them.
_TYPE_MESSAGES = {
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a number",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "dataclass_type": "must be a mapping",
    "missing": "is required",
    "extra_forbidden": "unknown key",
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a config file: where, what, and the value found there."""

    path: str
    message: str
    value: Any = MISSING
    warning: bool = False

    def render(self, source: str) -> str:
        where = f"{source}: {self.path}" if self.path else source
        shown = "" if self.value is MISSING else f" (got {self.value!r})"
        kind = "warning" if self.warning else "error"
        return f"{kind}: {where}: {self.message}{shown}"


class Report(Protocol):
    """Records one problem (an error or a warning) with its key path and value."""

    def __call__(self, path: str, message: str, value: Any = MISSING) -> None: ...


class ConfigError(Exception):
    """A config file that cannot be used; ``problems`` lists every error found."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(p.render(source) for p in problems))


def invalid(message: str, value: Any = MISSING, at: str = "") -> PydanticCustomError:
    """A validator's refusal: ``message`` about ``value``, at ``at`` below the key checked."""
    ctx: dict[str, Any] = {"message": message, "at": at}
    if value is not MISSING:
        ctx["got"] = value
    return PydanticCustomError("config", "{message}", ctx)


def key_path(loc: Iterable[int | str]) -> str:
    """``('routes', 0, 'path')`` -> ``routes[0].path``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _problem(err: ErrorDetails) -> Problem:
    loc, kind, ctx = err["loc"], err["type"], err.get("ctx") or {}
    path = key_path(loc)
    if kind == "config":
        return Problem(path + str(ctx.get("at", "")), str(ctx["message"]), ctx.get("got", MISSING))
    if kind == "extra_forbidden":
        return Problem(path, "unknown key", loc[-1] if loc else MISSING)
    if kind == "missing":
        return Problem(path, "is required")
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "")
        return Problem(path, f"must be {expected}", err["input"])
    if kind == "value_error":
        return Problem(path, str(ctx.get("error", err["msg"])), err["input"])
    message = _TYPE_MESSAGES.get(kind) or err["msg"][0].lower() + err["msg"][1:]
    return Problem(path, message, err["input"])


def problems_from(exc: ValidationError) -> list[Problem]:
    """Every error pydantic found, as problems with key path and value."""
    return [_problem(err) for err in exc.errors(include_url=False)]
