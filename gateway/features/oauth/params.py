"""Taking one parameter out of an OAuth request's parameters (query, form or JSON, already read by
:mod:`gateway.features.oauth.wire`): every value a string, a wrong type is ``invalid_request``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.core.errors import OAuthError

__all__ = ["param", "required"]


def param(params: Mapping[str, Any], key: str) -> str | None:
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise OAuthError("invalid_request", f"{key} must be a string.")
    return value


def required(params: Mapping[str, Any], key: str) -> str:
    value = param(params, key)
    if not value:
        raise OAuthError("invalid_request", f"{key} is required.")
    return value
