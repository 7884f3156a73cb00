"""Process model: ``serve`` runs one event loop, or a supervisor and N workers on one port.

Workers bind the proxy port with ``SO_REUSEPORT`` and keep their own caches, each fed by the store's
change feed; worker 0 also serves the admin and metrics listeners. The supervisor forwards SIGTERM
and SIGINT to its workers and exits with the worst exit status among them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import ssl
import sys
import tempfile
from dataclasses import replace

from aiohttp import web

from gateway import config as config_mod
from gateway.app import Gateway
from gateway.config import Config, Listener
from gateway.edge.apps import create_admin_app, create_proxy_app
from gateway.edge.catchall import DirectRunner
from gateway.edge.listen import CappedSite, ListenError, bind, opening
from gateway.edge.logbuffer import BufferedLineHandler, buffer_access_log, flush_periodically
from gateway.edge.tls import ServerCerts
from gateway.features.extauth import create_authz_app
from gateway.features.telemetry import metrics_app
from gateway.process.reload import Reloader

__all__ = ["serve"]

log = logging.getLogger("gateway.server")
_ACCESS_BUFFER: BufferedLineHandler | None = None  # set by _setup_logging in a serving process


def _install_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _run_worker(
    config: Config, config_path: str | None, index: int, reuse_port: bool
) -> None:
    # Certificates first: a listener whose certificate cannot load must stop the start, loudly.
    certs = {
        name: ServerCerts(listener.tls, name)
        for name, listener in (
            ("proxy", config.proxy),
            ("admin", config.admin),
            ("metrics", config.metrics),
        )
        if listener is not None and listener.tls is not None and (name == "proxy" or index == 0)
    }
    if index == 0:
        for w in config.warnings:  # e.g. an upstream with tls.verify: false — say it loudly
            log.warning("%s", w.render(config.source))
    gw = Gateway(config)
    await gw.start()
    flusher = asyncio.create_task(flush_periodically(_ACCESS_BUFFER)) if _ACCESS_BUFFER else None
    runners: list[web.AppRunner] = []
    reloader = Reloader(gw, config_path, certs=list(certs.values())) if config_path else None
    grace = config.limits.shutdown_grace
    # Signal handlers before the port opens: once a client (or an operator's script) can see the
    # gateway listening, SIGHUP reloads and SIGTERM drains, never the default "terminate".
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if reloader is not None:
        loop.add_signal_handler(signal.SIGHUP, reloader.reload, "SIGHUP")
    try:
        runner = DirectRunner(
            create_proxy_app(gw), access_log=None, handle_signals=False, shutdown_timeout=grace
        )
        await runner.setup()
        runners.append(runner)
        with opening("proxy", config.proxy.host, config.proxy.port):
            sock = bind(config.proxy.host, config.proxy.port, reuse_port=reuse_port)
            await CappedSite(
                runner,
                sock,
                config.limits.max_connections,
                config.limits.max_header_bytes,
                _ssl(certs, "proxy"),
            ).start()
        authz = create_authz_app(gw)
        if authz is not None and config.external_auth and config.external_auth.listener:
            # Every worker serves decisions, on one SO_REUSEPORT port like the proxy's.
            listener = config.external_auth.listener
            authz_runner = DirectRunner(
                authz, access_log=None, handle_signals=False, shutdown_timeout=grace
            )
            await authz_runner.setup()
            runners.append(authz_runner)
            with opening("external_auth", listener.host, listener.port):
                await CappedSite(
                    authz_runner,
                    bind(listener.host, listener.port, reuse_port=reuse_port),
                    config.limits.max_connections,
                    config.limits.max_header_bytes,
                ).start()
        if index == 0 and config.admin is not None:
            admin = web.AppRunner(create_admin_app(gw), access_log=None)
            await admin.setup()
            runners.append(admin)
            with opening("admin", config.admin.host, config.admin.port):
                await web.TCPSite(
                    admin, config.admin.host, config.admin.port, ssl_context=_ssl(certs, "admin")
                ).start()
        if index == 0 and config.metrics is not None:
            metrics = web.AppRunner(metrics_app(gw), access_log=None)
            await metrics.setup()
            runners.append(metrics)
            with opening("metrics", config.metrics.host, config.metrics.port):
                await web.TCPSite(
                    metrics,
                    config.metrics.host,
                    config.metrics.port,
                    ssl_context=_ssl(certs, "metrics"),
                ).start()
        _tune_gc()
        log.info("worker %d serving proxy on %s", index, config.proxy)
        print(
            f"gateway: worker {index} listening on {config.proxy.scheme}://{config.proxy}",
            file=sys.stderr,
            flush=True,
        )
        if reloader is not None:
            reloader.start()
        await stop.wait()
        log.warning("worker %d: stopping; draining in-flight requests (up to %ss)", index, grace)
    finally:
        if reloader is not None:
            await reloader.stop()
        # cleanup() stops accepting first, then waits up to shutdown_timeout for in-flight
        # requests; gw.stop() then flushes last_used_at.
        for r in reversed(runners):
            await r.cleanup()
        await gw.stop()
        if flusher is not None:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher


def _ssl(certs: dict[str, ServerCerts], name: str) -> ssl.SSLContext | None:
    """The context a listener starts with (its sni_callback hands out reloaded ones)."""
    c = certs.get(name)
    return c.listening if c is not None else None


def _setup_logging() -> None:
    """JSON access-log lines (and other logs) to stderr; GATEWAY_LOG_LEVEL=WARNING silences access."""
    logging.basicConfig(level=os.environ.get("GATEWAY_LOG_LEVEL", "INFO"), format="%(message)s")
    # The format uses none of these record fields, and the access log writes one record per
    # request: skip the caller lookup (a stack walk), thread and process ids (the logging docs'
    # "Optimization" section).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    global _ACCESS_BUFFER
    _ACCESS_BUFFER = buffer_access_log()


def _tune_gc() -> None:
    """Fewer, cheaper collections on the request path.

    Everything allocated while starting (modules, config, app, caches) is long-lived: freezing it
    keeps full collections from re-scanning it; a larger first generation threshold means the many
    short-lived objects of each request are mostly freed by reference counting before a
    generation-0 collection ever runs.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _defer_sighup() -> None:
    """Ignore SIGHUP until the worker's reload handler is installed.

    SIGHUP's default action ends the process, so one sent (or forwarded by the supervisor) while
    a worker is still importing would kill it. The worker installs its reload handler before its
    port opens, so a SIGHUP ignored here came before anyone could see the gateway up.
    """
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def _worker_entry(config_path: str | None, listen: str | None, index: int) -> None:
    _defer_sighup()
    _setup_logging()
    _install_uvloop()
    config = _load(config_path, listen)
    try:
        asyncio.run(_run_worker(config, config_path, index, reuse_port=True))
    except ListenError as exc:
        print(f"gateway: worker {index}: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)


def _load(config_path: str | None, listen: str | None) -> Config:
    cfg = config_mod.load(config_path or "gateway.yaml")
    if listen:
        host, _, port = listen.rpartition(":")
        cfg = replace(cfg, proxy=Listener(host or "127.0.0.1", int(port), cfg.proxy.tls))
    return cfg


def serve(config_path: str, listen: str | None = None, workers: int = 1) -> int:
    """Run the gateway until SIGTERM/SIGINT; returns the process exit status."""
    config = _load(config_path, listen)  # validate once, in the parent, before forking anything
    if workers <= 1:
        _defer_sighup()
        _setup_logging()
        _install_uvloop()
        asyncio.run(_run_worker(config, config_path, 0, reuse_port=False))
        return 0
    # One scrape must see every worker: prometheus-client's multiprocess mode keeps each worker's
    # samples in files under this directory, which must exist, empty, before any worker starts.
    metrics_dir = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_worker_entry, args=(config_path, listen, i), name=f"gateway-worker-{i}")
        for i in range(workers)
    ]

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    # An ignored signal stays ignored across exec, so each worker starts with SIGHUP ignored until
    # it installs its reload handler (see _defer_sighup); the supervisor forwards it after that.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    for p in procs:
        p.start()
    signal.signal(signal.SIGHUP, forward)
    status = 0
    try:
        running = list(procs)
        while running:
            multiprocessing.connection.wait([p.sentinel for p in running])
            for p in [p for p in running if not p.is_alive()]:
                running.remove(p)
                status = max(status, p.exitcode or 0)
                if p.exitcode:
                    # One worker could not serve (e.g. its port is taken): stop the others too,
                    # rather than run short-handed with a supervisor that looks healthy.
                    forward(signal.SIGTERM, None)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return status
