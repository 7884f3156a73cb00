"""The aiohttp floor: the cheapest reverse proxy this stack allows, measured beside the gateway.

Issue 7 asks for the gateway to stay on aiohttp as server and client. This contender shows what
that choice costs by itself, in the same sitting: aiohttp's low-level ``web.Server`` (no
application, router, middleware or signals) relaying each request over the gateway's own pooled
upstream exchange (:mod:`gateway.forward.upstream`), with uvloop, ``--workers`` processes on one
``SO_REUSEPORT`` port, and nothing else: no auth, no identity headers, no metrics, no access log,
no header hygiene. No gateway can be cheaper than this on the same stack; the distance from here
to nginx-proxy is the stack's, the distance from here to the gateway is the gateway's.

Run: ``python -m bench.floor --port P --upstream http://127.0.0.1:U --workers 2``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import signal
import socket
from collections.abc import Callable, Mapping

import uvloop
from aiohttp import web
from aiohttp.http_parser import RawResponseMessage
from multidict import CIMultiDict

from gateway.forward.upstream import UpstreamPool

SKIP = frozenset({"host", "connection", "keep-alive", "authorization", "content-length"})


def _serve(sock: socket.socket, upstream: str) -> None:
    async def main() -> None:
        pool = UpstreamPool(upstream)

        async def relay(request: web.BaseRequest) -> web.StreamResponse:
            message, body = await exchange(pool, request.method, request.raw_path, request.headers)
            return web.Response(
                status=message.code,
                body=body,
                headers={"Content-Type": message.headers.get("Content-Type", "")},
            )

        server = web.Server(relay, access_log=None)
        await asyncio.get_running_loop().create_server(server, sock=sock)
        await until_sigterm(pool)

    uvloop.run(main())


async def exchange(
    pool: UpstreamPool, method: str, target: str, incoming: Mapping[str, str]
) -> tuple[RawResponseMessage, bytes]:
    """One request over ``pool``: every header but ``SKIP`` forwarded, the body read whole."""
    headers = CIMultiDict((k, v) for k, v in incoming.items() if k.lower() not in SKIP)
    proto, message, payload = await pool.send(
        method, target, headers, connect_timeout=5, read_timeout=60, head_timeout=60
    )
    try:
        return message, await payload.read()
    finally:
        pool.release(proto)


def run_workers(serve: Callable[..., None], port: int, workers: int, *args: object) -> None:
    """``workers`` spawned processes, each running ``serve(sock, *args)`` on its own
    ``SO_REUSEPORT`` socket bound to 127.0.0.1:``port``, until SIGTERM."""
    ctx = multiprocessing.get_context("spawn")
    procs = []
    for _ in range(workers):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(1024)
        sock.setblocking(False)
        proc = ctx.Process(target=serve, args=(sock, *args), daemon=True)
        proc.start()
        sock.close()  # the worker has its own copy; a dead worker must not leave a silent port
        procs.append(proc)

    def stop(*_: object) -> None:
        for q in procs:
            q.terminate()

    signal.signal(signal.SIGTERM, stop)
    for proc in procs:
        proc.join()


def relay_cli(prog: str, doc: str | None, serve: Callable[[socket.socket, str], None]) -> None:
    """The command line the floor and the parser relay share: ``--port``, ``--upstream``,
    ``--workers``; then ``serve(sock, upstream)`` in every worker."""
    p = argparse.ArgumentParser(prog=prog, description=(doc or "").split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    run_workers(serve, args.port, args.workers, args.upstream)


async def until_sigterm(pool: UpstreamPool) -> None:
    """Serve until SIGTERM, then close ``pool``'s upstream connections."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    pool.close()


if __name__ == "__main__":
    relay_cli("python -m bench.floor", __doc__, _serve)
