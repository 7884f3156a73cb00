"""Wiring: build the long-lived services once, and the config-derived runtime per (re)load.

:class:`Gateway` owns what lives as long as the process (store, caches, change feed, usage recorder,
the upstream client: one aiohttp ``ClientSession``). :class:`Runtime` owns everything derived from
one config (router, authenticator, workspace resolver, forwarder) plus the gateway's frozen
request-path :class:`gateway.pipeline.hooks.Hooks` (the same object in every runtime: hooks are
installed once per process); a reload builds a new runtime and swaps a single reference, so a
request in flight finishes on the runtime it started with.

Around it: the listener apps in :mod:`gateway.edge.apps`, what wraps each request (errors → JSON,
observers) in :mod:`gateway.edge.wrap`, the access line in :mod:`gateway.edge.accesslog`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from gateway.config import Config
from gateway.core import tokens
from gateway.core.errors import UpstreamTimeout
from gateway.edge import accesslog
from gateway.edge.deadline import Deadlines
from gateway.extensions import load_all
from gateway.forward.balancer import Balancers
from gateway.forward.client import make_upstream_client
from gateway.forward.proxy import Forwarder
from gateway.forward.upstream import UpstreamPools
from gateway.pipeline.authn import Authenticator, SessionVerifier
from gateway.pipeline.hooks import Hooks, handlers_of
from gateway.pipeline.memo import HitMemo
from gateway.pipeline.routing import Router
from gateway.pipeline.run import run
from gateway.pipeline.workspace import WorkspaceResolver
from gateway.store import Store, open_store
from gateway.store.cache import AuthCache
from gateway.store.changefeed import ChangeFeed
from gateway.store.health import StoreHealth
from gateway.store.usage import UsageRecorder

__all__ = ["Gateway", "Runtime"]

# A change-feed read may return a thousand rows: it gets at least this long before it counts as
# an outage.
FEED_READ_TIMEOUT = 1.0


@dataclass(slots=True)
class Runtime:
    config: Config
    router: Router
    authenticator: Authenticator
    workspaces: WorkspaceResolver
    forwarder: Forwarder
    memo: HitMemo
    hooks: Hooks  # the gateway's, frozen: every hook a request runs comes from here


class Gateway:
    """One process's gateway: services plus the current runtime."""

    def __init__(self, config: Config, store: Store | None = None) -> None:
        self.config = config
        opts = config.store_options
        self.store: Store = store or open_store(
            config.store, connect_timeout=opts.connect_timeout, query_timeout=opts.query_timeout
        )
        self.hasher = tokens.TokenHasher(config.pepper)
        # Issue 23: one view of the store's health for the request path and the change feed.
        self.health = StoreHealth(opts.lookup_timeout, opts.probe_interval, opts.outage_grace)
        self.cache = AuthCache(self.store, config.cache, health=self.health)
        self.feed = ChangeFeed(
            self.store,
            [self.cache],
            config.cache.poll_interval,
            self.health,
            timeout=max(opts.lookup_timeout, FEED_READ_TIMEOUT),
        )
        self.health.on_probe_ok = self.feed.wake
        self.usage = UsageRecorder(self.store, config.cache.usage_flush_interval)
        self._upstream_client: aiohttp.ClientSession | None = None
        self.pools = UpstreamPools()  # kept across reloads: idle upstream connections stay warm
        self.balancers = Balancers()  # multi-target upstreams' health, kept across reloads too
        self.session_verifier: SessionVerifier | None = None
        # Async cleanups run by stop() (e.g. closing a Redis client).
        self.closers: list[Callable[[], Awaitable[None]]] = []
        # Coroutine factories run as tasks between start() and stop() (e.g. metric refreshers).
        self.background: list[Callable[[], Coroutine[Any, Any, None]]] = [self.pools.sweep_forever]
        self._tasks: list[asyncio.Task[None]] = []
        self.deadlines = Deadlines()
        self.started = time.time()
        self.runtime: Runtime = None  # type: ignore[assignment]
        self.extensions = load_all()
        # The request path's hooks: extensions add theirs in install(), then they are frozen.
        # Read off the module, not imported by name, so bench.steps can time it by patching there.
        self.hooks = Hooks(observers=(accesslog.log_access,), handlers=handlers_of(self.extensions))
        for ext in self.extensions:
            install = getattr(ext, "install", None)
            if install is not None:
                install(self)
        self.hooks.freeze()

    # -- runtime -----------------------------------------------------------------------------------

    def build_runtime(self, config: Config) -> Runtime:
        """Everything derived from ``config``; raises nothing a valid config can trigger."""
        authenticator = Authenticator(
            config, self.cache, self.hasher, self.usage, self.session_verifier
        )
        assert self._upstream_client is not None
        return Runtime(
            config=config,
            router=Router(config.routes),
            authenticator=authenticator,
            workspaces=WorkspaceResolver(config, self.cache),
            forwarder=Forwarder(
                config,
                self._upstream_client,
                self.pools,
                authenticator.credential_headers,
                self.balancers,
                self.hooks.upstream_headers,
            ),
            memo=HitMemo(self.cache, config.cache.size),
            hooks=self.hooks,
        )

    def apply_config(self, config: Config) -> None:
        runtime = self.build_runtime(config)
        self.balancers.update(
            config.upstreams,
            {name: ctx for name, (ctx, _) in runtime.forwarder.tls.items()},
            self._upstream_client,
        )
        self.runtime = runtime
        self.config = config
        # Idle upstream connections to base URLs the new config no longer names are closed.
        self.pools.retain(
            {
                url
                for up in config.upstreams.values()
                for url in (*up.targets, *up.environments.values())
                if url
            }
        )

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self.deadlines.bind(asyncio.get_running_loop())
        await self.store.open()
        self._upstream_client = make_upstream_client()
        self.apply_config(self.config)
        await self.feed.start()
        await self.usage.start()
        self._tasks = [asyncio.create_task(factory()) for factory in self.background]

    @property
    def client(self) -> aiohttp.ClientSession:
        """The shared upstream client (exists between start and stop)."""
        assert self._upstream_client is not None, "Gateway.start() has not run"
        return self._upstream_client

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.balancers.stop()
        await self.feed.stop()
        await self.usage.stop()
        for close in self.closers:
            await close()
        self.pools.close()
        self.deadlines.unbind()
        if self._upstream_client is not None:
            await self._upstream_client.close()
        await self.store.close()

    # -- the proxy handler -------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        # Deadlines, not asyncio.timeout: one shared timer instead of one per request (see there).
        deadline = self.deadlines.enter(self.runtime.config.limits.request_timeout)
        try:
            try:
                return await run(self, request)
            finally:
                timed_out = self.deadlines.leave(deadline)
        except asyncio.CancelledError:
            if not timed_out:
                raise
        except TimeoutError:
            pass
        raise UpstreamTimeout(
            "The request took longer than the gateway allows.", reason="request_timeout"
        ) from None
