"""Skip (locally) or fail (in CI) when a test needs something this machine lacks.

Locally a missing PostgreSQL, Redis, nginx, Prometheus or Chromium skips its tests with a message
saying exactly what is missing and how to provide it. `.ci/run` sets GATEWAY_REQUIRE_ALL=1, which
turns every such skip into a failure, so CI can never pass by skipping.
"""

from __future__ import annotations

import os
import shutil

import pytest


def missing(what: str, how: str) -> None:
    message = f"{what} is not available: {how}"
    if os.environ.get("GATEWAY_REQUIRE_ALL") == "1":
        pytest.fail(f"{message} (GATEWAY_REQUIRE_ALL=1: CI must not skip)", pytrace=False)
    pytest.skip(message)


def env_or_skip(var: str, what: str) -> str:
    value = os.environ.get(var)
    if not value:
        missing(what, f"set {var} (e.g. .ci/run sets it) to run these tests")
        raise AssertionError("unreachable")
    return value


def binary_or_skip(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(name, f"install Debian's {package} package (.ci/run does)")
        raise AssertionError("unreachable")
    return path
