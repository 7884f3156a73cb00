"""A collector stand-in for ``--tracing``: accepts OTLP/HTTP trace exports and discards them.

It answers ``POST /v1/traces`` with an empty ``ExportTraceServiceResponse`` (200), which is all the
gateway's exporter needs to count an export as done, and tallies requests and bytes on stderr at
exit. Decoding is left out on purpose: its CPU is the collector's, not the gateway's.

Run: ``python -m bench.otlpsink --port P``.
"""

from __future__ import annotations

import argparse
import sys

from aiohttp import web


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.otlpsink")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    seen = {"requests": 0, "bytes": 0}

    async def traces(request: web.Request) -> web.Response:
        seen["requests"] += 1
        seen["bytes"] += len(await request.read())
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def report(app: web.Application) -> None:
        print(f"otlp-sink: {seen['requests']} exports, {seen['bytes']} bytes", file=sys.stderr)

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/v1/traces", traces)
    app.on_shutdown.append(report)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
