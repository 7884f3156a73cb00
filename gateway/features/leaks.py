"""``POST /credentials/revoke``: anyone who finds a leaked token (a secret scanner, a stranger
reading a public repository) can kill it in seconds, without authenticating.

Body: ``{"tokens": ["<token>", …]}``, at most :data:`MAX_TOKENS`. Each string that has the shape
of one of the config's token types *and whose checksum verifies* is looked up by its hash (public
browser keys, types with ``require_allowed_domains``, are not: they are published by design); an
active token found is revoked and its workspace's audit log gets ``token.revoked_as_leaked``
(actor ``leak-report``, the reporter's address). The answer is the same whatever was found:
``202 {"received": n}``, so the endpoint says nothing about which tokens exist. Checksums make
enumeration pointless (a random guess is refused offline), and every call is rate-limited per
client address (:data:`LIMIT` calls per :data:`WINDOW` seconds, 429 past it), through the
configured rate-limit backend (Redis when ``rate_limits.redis`` is set, else this process).

The route is added by the config (:func:`gateway.config.leak_routes`), so path normalization and
the edge's error rendering apply to it like to any other public route.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.core import tokens
from gateway.core.context import RequestContext
from gateway.core.errors import InvalidArgument, RateLimited
from gateway.edge.responses import json_response
from gateway.edge.wrap import GATEWAY
from gateway.features.ratelimit import Backend, BackendError, Counter, client_address, make_backend
from gateway.management.bodies import read_json_object
from gateway.pipeline.builtin import BuiltinHandler

if TYPE_CHECKING:
    from gateway.app import Gateway

__all__ = ["HANDLERS", "LIMIT", "MAX_BODY", "MAX_TOKENS", "WINDOW", "install", "revoke_leaked"]

MAX_TOKENS = 1000
LIMIT = 10  # calls per client address …
WINDOW = 60.0  # … per this many seconds
ACTOR = "leak-report"
MAX_BODY = 128 * 1024  # 1,000 tokens of ~60 characters, quoted, with room for whitespace

_backend: dict[int, Backend] = {}  # one per gateway (id(gw)), made by install()


async def revoke_leaked(request: web.Request, ctx: RequestContext) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    cfg = gw.runtime.config
    address = client_address(request, cfg.trusted_proxies)
    backend = _backend.get(id(gw))
    if backend is not None:
        counter = Counter(f"{cfg.rate_limits.key_prefix}leak:{address}", LIMIT, WINDOW)
        try:
            admitted, outcomes = await backend.hit([counter], record=True)
        except BackendError:
            admitted, outcomes = False, []  # fail closed: an unmetered endpoint writes the store
        if not admitted:
            retry = max(1, int(outcomes[0].reset + 0.999)) if outcomes else int(WINDOW)
            raise RateLimited(
                "Too many revocation reports from this address.",
                reason="leak_rate",
                headers={"Retry-After": str(retry)},
            )
    body = await read_json_object(request, MAX_BODY)
    items = body.get("tokens")
    if set(body) != {"tokens"} or not isinstance(items, list):
        raise InvalidArgument('Send {"tokens": ["…", …]}.', reason="leak_body")
    if len(items) > MAX_TOKENS:
        raise InvalidArgument(f"At most {MAX_TOKENS} tokens per call.", reason="leak_too_many")
    if not all(isinstance(t, str) for t in items):
        raise InvalidArgument("tokens must be a list of strings.", reason="leak_body")
    # Public browser keys (types with require_allowed_domains) are published in every page that
    # embeds them: "leaked" means nothing there, and revoking them here would let any visitor
    # disable a customer's integration. Their workspace revokes them through its own doors.
    prefixes = [tt.prefix for tt in cfg.token_types if not tt.require_allowed_domains]
    for value in dict.fromkeys(items):
        prefix = next((p for p in prefixes if value.startswith(p)), None)
        if prefix is None:
            continue
        try:
            tokens.check(value, prefix)
        except tokens.TokenShapeError:
            continue  # a typo or a guess: refused offline, never looked up
        found = await gw.store.find_token(gw.hasher(value))
        if found is None:
            continue
        record, _ = found
        now = time.time()
        if record.revoked_at is None and await gw.store.revoke_token(record.id, now):
            await gw.store.add_audit(
                "token.revoked_as_leaked",
                at=now,
                actor=ACTOR,
                address=address,
                token_id=record.id,
                visible_prefix=record.visible_prefix,
                workspace_id=record.workspace_id,
            )
    return json_response({"received": len(items)}, status=202)


def install(gw: Gateway) -> None:
    backend = make_backend(gw.config.rate_limits)
    _backend[id(gw)] = backend

    async def close() -> None:
        _backend.pop(id(gw), None)
        with contextlib.suppress(asyncio.CancelledError):
            await backend.close()

    gw.closers.append(close)


# Built-in handlers by the name routes give in `handler:` (gathered by gateway.pipeline.hooks.handlers_of).
HANDLERS: dict[str, BuiltinHandler] = {
    "revoke_leaked": revoke_leaked,
}
