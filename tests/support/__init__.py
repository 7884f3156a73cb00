"""Shared test machinery: a real upstream and a real gateway on loopback ports.

Where to find what (reuse these instead of writing a test-local copy):

- ``harness``: the gateway app and recording upstreams in-process; ``eventually`` for polling.
- ``calls``: the one HTTP request helper (``send`` for status/headers/body, ``call`` for
  status and JSON).
- ``served``: ``gateway serve`` as a real process, the CLI, ``free_port``.
- ``presets``: a shipped ``config/*.yaml`` preset running on loopback; ``core_config``: the
  config the core end-to-end tests run.
- ``rawhttp``, ``tcpproxy``, ``proxies``, ``certs``, ``otlp``, ``oauth``: raw bytes on a socket,
  a relay that can drop or hang, nginx/Caddy in front, TLS certificates, an OTLP receiver,
  session JWTs and a JWKS server.
- ``stores``: each test's own PostgreSQL schema and Redis key prefix; ``require``: skip locally
  (fail in CI) when the machine lacks a backend or binary, saying which.
"""
