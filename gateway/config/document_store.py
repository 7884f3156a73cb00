"""``gateway.yaml``'s store sections, what :mod:`gateway.store` reads: ``store`` (the URL and how
outages are treated) and ``cache`` (the decision caches in front of it).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

from gateway.config.fields import (
    Float,
    PositiveFloat,
    PositiveInt,
    Section,
    check,
    default_of,
)
from gateway.config.problems import invalid
from gateway.config.runtime_store import CacheConfig, StoreOptions

__all__ = ["CacheDoc", "StoreDoc", "StoreField"]

_STORE_URL = re.compile(r"^(sqlite:///|sqlite://:memory:|postgres(ql)?://)")
_STORE_URL_MESSAGE = "must be sqlite:///PATH or postgresql://…"


class StoreDoc(Section):
    """``store:``: a URL, or a mapping with ``url`` and how store outages are treated."""

    url: Annotated[str, check(_STORE_URL.match, _STORE_URL_MESSAGE)] = "sqlite:///gateway.db"
    outage_grace: Annotated[Float, check(lambda v: v >= 0, "must be zero or positive")] = (
        default_of(StoreOptions, "outage_grace")
    )
    connect_timeout: PositiveFloat = default_of(StoreOptions, "connect_timeout")
    query_timeout: PositiveFloat = default_of(StoreOptions, "query_timeout")
    lookup_timeout: PositiveFloat = default_of(StoreOptions, "lookup_timeout")
    probe_interval: PositiveFloat = default_of(StoreOptions, "probe_interval")


def _store(value: Any) -> Any:
    if isinstance(value, str):
        if value and not _STORE_URL.match(value):
            raise invalid(_STORE_URL_MESSAGE, value)
        return {"url": value}
    return value


StoreField = Annotated[StoreDoc, BeforeValidator(_store, json_schema_input_type=str | StoreDoc)]


# -- cache -------------------------------------------------------------------------------------------


class CacheDoc(Section):
    size: PositiveInt = default_of(CacheConfig, "size")
    ttl: Float = default_of(CacheConfig, "ttl")
    negative_size: PositiveInt = default_of(CacheConfig, "negative_size")
    negative_ttl: Float = default_of(CacheConfig, "negative_ttl")
    poll_interval: Annotated[
        Float, check(lambda v: 0 < v <= 1.0, "must be in (0, 1] so changes land within a second")
    ] = default_of(CacheConfig, "poll_interval")
    usage_flush_interval: Float = default_of(CacheConfig, "usage_flush_interval")
