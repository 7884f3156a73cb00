"""The building blocks of the config model: how scalars are read, the shared value types (``Seconds``,
``HeaderName``, ``Url``, ``StrList`` …) with their rules, and :class:`Section`, the base of every
mapping in ``gateway.yaml``.

Scalars are read as the config always has been: numbers from ``${VAR}`` strings, booleans from
true/false/yes/no/1/0, never a boolean as a number. Every refusal is :func:`invalid`, so it reads
``path: message (got value)`` like every other problem.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Strict,
    WithJsonSchema,
    model_validator,
)

from gateway.config.problems import invalid
from gateway.core import durations

HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
PREFIX = re.compile(r"[a-z][a-z0-9]*_([a-z0-9]+_)*")


def default_of(cls: type, name: str) -> Any:
    """The default the runtime dataclass ``cls`` gives ``name`` (stated there, once)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def check(ok: Callable[[Any], object], message: str) -> AfterValidator:
    """A single-value rule: refuse the value with ``message`` unless ``ok(value)``."""

    def run(value: Any) -> Any:
        if not ok(value):
            raise invalid(message, value)
        return value

    return AfterValidator(run)


def one_or_many(value: Any) -> Any:
    if value is None:
        return []
    return [value] if isinstance(value, str) else value


# Scalars as the config has always read them: numbers from ${VAR} strings, booleans from
# true/false/yes/no/1/0 — but never a boolean as a number, nor a number as a boolean.
def _bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false", "yes", "no", "1", "0"}:
        return value.lower() in {"true", "yes", "1"}
    raise invalid("must be true or false", value)


def _int(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    raise invalid("must be an integer", value)


def _float(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise invalid("must be a number", value)


Bool = Annotated[bool, BeforeValidator(_bool)]
Int = Annotated[int, BeforeValidator(_int)]
Float = Annotated[float, BeforeValidator(_float)]


# Entries of a list are strings as written: a number there is a mistake, not a name.
Text = Annotated[str, Strict()]
StrList = Annotated[
    list[Text], BeforeValidator(one_or_many, json_schema_input_type=str | list[str])
]


def _seconds(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    found = durations.seconds(value) if isinstance(value, str) else None
    if not found:
        raise invalid("must be a positive number of seconds or e.g. 30s, 10m, 1h, 30d", value)
    return float(found)


Seconds = Annotated[
    float,
    BeforeValidator(_seconds),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": durations.DURATION_PATTERN},
            ],
            "description": "seconds, or a duration like 30s, 10m, 1h, 30d",
        }
    ),
]
HeaderName = Annotated[str, check(HEADER_NAME.match, "must be an HTTP header name")]
CookieName = Annotated[str, check(HEADER_NAME.match, "must be a cookie name")]
Positive = Annotated[Int, check(lambda v: v >= 1, "must be at least 1")]
# The same bound said as the cache and limits sections have always said it.
PositiveInt = Annotated[Int, check(lambda v: v > 0, "must be positive")]
PositiveFloat = Annotated[Float, check(lambda v: v > 0, "must be positive")]


def http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise invalid("must be an http:// or https:// URL", value)
    return value.rstrip("/")


Url = Annotated[str, AfterValidator(http_url)]


def _readable(value: str) -> str:
    if not os.access(value, os.R_OK):
        raise invalid("is not a readable file", value)
    return value


# A certificate/key file that must exist and be readable now (checked again on use).
ReadableFile = Annotated[str, AfterValidator(_readable)]


def route_path(pattern: str) -> str:
    """A route path pattern: literal segments, ``{name}`` parameters, ``**`` last."""
    if not pattern.startswith("/"):
        raise invalid("must start with '/'", pattern)
    segments = pattern.split("/")[1:]
    for i, seg in enumerate(segments):
        if seg == "**":
            if i != len(segments) - 1:
                raise invalid("'**' is only allowed as the last segment", pattern)
        elif seg.startswith("{"):
            if not re.fullmatch(r"\{[A-Za-z_][A-Za-z0-9_]*\}", seg):
                raise invalid("a parameter segment must look like {name}", pattern)
        elif seg == "" and i != len(segments) - 1:
            raise invalid("must not contain empty segments ('//')", pattern)
        elif seg in {".", ".."} or not re.fullmatch(r"[A-Za-z0-9._~!$&'()*+,=:@-]*", seg):
            raise invalid("segments may only hold unreserved characters", pattern)
    return pattern


def literal_path(value: str) -> str:
    route_path(value)
    if "{" in value or "**" in value:
        raise invalid("must be a literal path", value)
    return value


class Section(BaseModel):
    """A mapping in ``gateway.yaml``: unknown keys refused, ``null`` meaning "not given"."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)
    _nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_unset(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None or k in cls._nullable}
        return data
