"""The three servers under test, each with a generated config in the run's temporary directory.

* ``upstream``: Debian nginx answering ``/api/small`` with a small JSON body and serving
  ``/api/files/*`` (1 MiB, and a sparse file for the large streamed body) — what "direct" measures;
* ``nginx-proxy``: a second nginx, a plain reverse proxy (keep-alive upstream pool) to the upstream;
* ``aiohttp-floor``: the cheapest relay on the gateway's own stack (:mod:`bench.floor`);
* ``gateway``: ``gateway serve --workers N`` with full auth, identity headers, metrics and the JSON
  access log on, over the benchmark's SQLite token store.

For the TLS scenarios (issue 22) the upstream also listens with TLS (``direct-tls``), and there are
``nginx-proxy-tls`` and ``gateway-tls`` terminating TLS with the same certificate (one ECDSA P-256
certificate made by ``openssl req``), and ``gateway-https-up``: the plain gateway listener in
front of the upstream's TLS port.

Everything binds 127.0.0.1 on ports the kernel picked, runs in the foreground (``daemon off``) and
is stopped by :class:`bench.procs.Processes`.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.procs import Processes, free_port, process_tree, wait_for

__all__ = [
    "Chain",
    "Server",
    "gateway_config",
    "nginx_common",
    "render_auth_request_conf",
    "start_floor",
    "start_gateway",
    "start_nginx_authz",
    "start_nginx_proxy",
    "start_upstream",
]

SMALL_BODY = '{"id":42,"name":"widget","price":9.99,"tags":["a","b"],"ok":true}'
NGINX = "/usr/sbin/nginx"


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid)

    def workers(self) -> list[int]:
        """The processes that serve requests (children of the master/supervisor)."""
        tree = self.pids()
        return [p for p in tree if p != self.proc.pid] or tree


@dataclass
class Chain(Server):
    """A server that asks others on every request (nginx + auth_request → gateway): its CPU per
    request counts theirs too."""

    behind: tuple[Server, ...] = ()

    def pids(self) -> list[int]:
        return [p for s in (self, *self.behind) for p in process_tree(s.proc.pid)]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def nginx_common(tmp: Path, name: str, workers: int) -> str:
    user = ""
    if os.geteuid() == 0:
        # As root nginx would drop its workers to "nobody", who cannot read our private temp dir.
        user = f"user {pwd.getpwuid(0).pw_name};"
    temps = "\n".join(
        f"  {kind}_temp_path {tmp}/{name}-{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
{user}
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile 16384;
pid {tmp}/{name}.pid;
error_log {tmp}/{name}.error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  sendfile on;
{temps}
"""


AUTH_REQUEST_CONF = Path(__file__).resolve().parents[1] / "config" / "nginx" / "auth_request.conf"
AUTH_REQUEST_VARS = (
    "NGINX_LISTEN",
    "GATEWAY_AUTHZ",
    "APP_UPSTREAM",
    "NGINX_CACHE_DIR",
    "GATEWAY_DECISION_CACHE",
)


def render_auth_request_conf(**values: str) -> str:
    """config/nginx/auth_request.conf as shipped, its placeholders filled as envsubst would."""
    text = AUTH_REQUEST_CONF.read_text()
    for name in AUTH_REQUEST_VARS:
        text = text.replace("${" + name + "}", values[name])
    return text


def make_certificate(tmp: Path) -> tuple[Path, Path]:
    """A self-signed ECDSA P-256 certificate for 127.0.0.1 (cert, key), for every TLS contender."""
    cert, key = tmp / "bench-cert.pem", tmp / "bench-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _nginx_tls(tls: tuple[Path, Path]) -> str:
    return f"""
    ssl_certificate {tls[0]};
    ssl_certificate_key {tls[1]};
    ssl_protocols TLSv1.2 TLSv1.3;"""


def start_upstream(
    procs: Processes,
    tmp: Path,
    cpus: str | None,
    big_bytes: int,
    tls: tuple[Path, Path] | None = None,
) -> Server:
    """The nginx upstream; with ``tls`` it also listens with TLS (see :func:`tls_twin`)."""
    files = tmp / "files"
    files.mkdir()
    (files / "1m.bin").write_bytes(os.urandom(1 << 20))
    with (files / "big.bin").open("wb") as f:
        f.truncate(big_bytes)  # sparse: costs no disk, streams as zeros
    port = free_port()
    tls_listen = ""
    if tls is not None:
        tls_listen = f"listen 127.0.0.1:{free_port()} ssl;" + _nginx_tls(tls)
    conf = tmp / "upstream.conf"
    conf.write_text(
        nginx_common(tmp, "upstream", 1)
        + f"""
  server {{
    listen 127.0.0.1:{port};
    {tls_listen}
    location = /api/small {{
      default_type application/json;
      return 200 '{SMALL_BODY}';
    }}
    location /api/files/ {{
      alias {files}/;
    }}
  }}
}}
"""
    )
    log = tmp / "upstream.stderr"
    proc = procs.start(
        "upstream", [NGINX, "-e", str(tmp / "upstream.err"), "-c", str(conf)], cpus=cpus, stderr=log
    )
    wait_for(lambda: _port_open(port) or _died(proc, log), 15, "the nginx upstream")
    return Server("direct", proc, port, log)


def tls_twin(upstream: Server, tmp: Path) -> Server:
    """The upstream's TLS listener, as its own contender (same process)."""
    conf = (tmp / "upstream.conf").read_text()
    port = int(conf.split(" ssl;")[0].rsplit("127.0.0.1:", 1)[1])
    wait_for(lambda: _port_open(port), 15, "the nginx upstream's TLS port")
    return Server("direct-tls", upstream.proc, port, upstream.log, "https")


def start_nginx_proxy(
    procs: Processes,
    tmp: Path,
    cpus: str | None,
    upstream: Server,
    workers: int,
    tls: tuple[Path, Path] | None = None,
) -> Server:
    """nginx as a reverse proxy; with ``tls`` it terminates TLS (``nginx-proxy-tls``)."""
    port = free_port()
    name = "nginx-proxy-tls" if tls else "nginx-proxy"
    conf = tmp / f"{name}.conf"
    conf.write_text(
        nginx_common(tmp, name, workers)
        + f"""
  upstream app {{
    server 127.0.0.1:{upstream.port};
    keepalive 256;
  }}
  server {{
    listen 127.0.0.1:{port} {"ssl " if tls else ""}reuseport;{_nginx_tls(tls) if tls else ""}
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # Stream like the gateway does, rather than spooling large bodies to temp files.
      proxy_buffering off;
    }}
  }}
}}
"""
    )
    log = tmp / f"{name}.stderr"
    proc = procs.start(
        name, [NGINX, "-e", str(tmp / f"{name}.err"), "-c", str(conf)], cpus=cpus, stderr=log
    )
    wait_for(lambda: _port_open(port) or _died(proc, log), 15, f"the {name}")
    return Server(name, proc, port, log, "https" if tls else "http")


def start_nginx_authz(
    procs: Processes,
    tmp: Path,
    cpus: str | None,
    upstream: Server,
    gateway: Server,
    authz_port: int,
    workers: int,
    *,
    cache_dir: Path | None,
) -> Chain:
    """nginx running config/nginx/auth_request.conf as shipped, deciding through the gateway's
    decision listener; with ``cache_dir`` its decision cache is on, kept there."""
    cache = cache_dir is not None
    name = "nginx+authz+cache" if cache else "nginx+authz"
    tag = name.replace("+", "-")
    port = free_port()
    conf = tmp / f"{tag}.conf"
    conf.write_text(
        nginx_common(tmp, tag, workers)
        + render_auth_request_conf(
            NGINX_LISTEN=f"127.0.0.1:{port} reuseport",
            GATEWAY_AUTHZ=f"127.0.0.1:{authz_port}",
            APP_UPSTREAM=f"127.0.0.1:{upstream.port}",
            NGINX_CACHE_DIR=str(cache_dir or tmp / f"{tag}-decisions"),
            GATEWAY_DECISION_CACHE="gateway_decisions" if cache else "off",
        )
        + "\n}\n"
    )
    log = tmp / f"{tag}.stderr"
    argv = [NGINX, "-e", str(tmp / f"{tag}.err"), "-c", str(conf)]
    proc = procs.start(name, argv, cpus=cpus, stderr=log)
    wait_for(lambda: _port_open(port) or _died(proc, log), 15, f"the {name}")
    return Chain(name, proc, port, log, behind=(gateway,))


def gateway_config(
    port: int,
    admin: int,
    metrics: int,
    db: Path,
    upstream: Server,
    extra_routes: int = 40,
    tls: tuple[Path, Path] | None = None,
    upstream_ca: Path | None = None,
    authz: int | None = None,
    tracing: str | None = None,
    tracing_ratio: float = 1.0,
) -> str:
    """Full auth, identity headers (defaults), metrics and access log on; a realistic route table.

    ``tls``: the proxy listener terminates TLS with this (cert, key); an ``https`` upstream is
    verified against the same certificate (self-signed, so it is its own CA).
    ``authz``: also serve external-authorization decisions on that port, to nginx on 127.0.0.1.
    ``tracing``: an OTLP/HTTP endpoint; requests are then traced at ``tracing_ratio``.
    """
    proxy = f'"127.0.0.1:{port}"'
    if tls is not None:
        proxy = (
            f'{{address: "127.0.0.1:{port}", tls: {{cert_file: "{tls[0]}", key_file: "{tls[1]}"}}}}'
        )
    upstream_tls = ""
    if upstream.scheme == "https":
        assert upstream_ca is not None, "an https upstream needs the CA to verify it"
        upstream_tls = f', tls: {{ca_file: "{upstream_ca}"}}'
    traced = (
        f'tracing: {{endpoint: "{tracing}", sampling_ratio: {tracing_ratio}}}' if tracing else ""
    )
    decoys = "\n".join(
        f"  - {{name: svc{i}, path: '/svc{i}/{{id}}/items/**', scopes: [items:read]}}"
        for i in range(extra_routes)
    )
    decisions = (
        f'trusted_proxies: ["127.0.0.1/32"]\nexternal_auth: {{listener: "127.0.0.1:{authz}"}}\n'
        if authz
        else ""
    )
    return (
        decisions
        + f"""
listeners:
  proxy: {proxy}
  admin: "127.0.0.1:{admin}"
  metrics: "127.0.0.1:{metrics}"
store: "sqlite:///{db}"
token_types:
  - {{name: live, prefix: gw_live_, kind: api_key, environment: live}}
  - {{name: test, prefix: gw_test_, kind: api_key, environment: test}}
workspace: {{source: header, header: X-Workspace-Id, match: any, required: false}}
upstreams:
  api: {{url: "{upstream.url}", timeout: 60, connect_timeout: 5{upstream_tls}}}
scopes:
  known: [items:read, items:write, admin:all]
  implies: {{items:write: [items:read]}}
roles: {{owner: [admin:all], member: [items:read, items:write]}}
routes:
  - {{name: public, path: /public/**, public: true}}
  - {{name: api-read, path: /api/**, methods: [GET, HEAD], scopes: [items:read]}}
  - {{name: api-write, path: /api/**, methods: [POST, PUT, PATCH, DELETE], scopes: [items:write]}}
  - {{name: admin, path: /admin/**, scopes: [admin:all]}}
{decoys}
{traced}
"""
    )


def start_gateway(
    procs: Processes,
    tmp: Path,
    cpus: str | None,
    upstream: Server,
    db: Path,
    workers: int,
    name: str = "gateway",
    source: Path | None = None,
    tls: tuple[Path, Path] | None = None,
    ca: Path | None = None,
    authz: int | None = None,
    tracing: str | None = None,
    tracing_ratio: float = 1.0,
) -> tuple[Server, int]:
    """Start ``gateway serve --workers N``; returns the server and its metrics port.

    ``source``: run the ``gateway`` package found there (an older revision) instead of this one.
    ``authz``: the port its workers answer external-authorization decisions on.
    """
    port, admin, metrics = free_port(), free_port(), free_port()
    tag = name.replace("/", "_").replace("@", "_")
    cfg = tmp / f"{tag}.yaml"
    cfg.write_text(
        gateway_config(
            port,
            admin,
            metrics,
            db,
            upstream,
            tls=tls,
            upstream_ca=ca,
            authz=authz,
            tracing=tracing,
            tracing_ratio=tracing_ratio,
        )
    )
    log = tmp / f"{tag}.stderr"  # the JSON access log goes here, one line per request
    env = {"GATEWAY_LOG_LEVEL": "INFO"}
    if source is not None:
        env["PYTHONPATH"] = str(source)
    proc = procs.start(
        name,
        [sys.executable, "-m", "gateway", "--config", str(cfg), "serve", "--workers", str(workers)],
        cpus=cpus,
        env=env,
        stderr=log,
        cwd=source,
    )

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"the gateway exited early:\n{log.read_text()[-3000:]}")
        text = log.read_text(errors="replace")
        return all(f"worker {i} listening" in text for i in range(workers)) and _port_open(metrics)

    wait_for(ready, 60, "the gateway workers")
    return Server(name, proc, port, log, "https" if tls else "http"), metrics


def _start_relay(
    procs: Processes, tmp: Path, cpus: str | None, name: str, module: str, args: list[str]
) -> Server:
    """``python -m module --port P *args`` (a bench relay), once its port opens."""
    port = free_port()
    log = tmp / f"{name}.stderr"
    argv = [sys.executable, "-m", module, "--port", str(port), *args]
    proc = procs.start(name, argv, cpus=cpus, stderr=log)
    wait_for(lambda: _port_open(port) or _died(proc, log), 30, f"the {name}")
    return Server(name, proc, port, log)


def start_floor(
    procs: Processes, tmp: Path, cpus: str | None, upstream: Server, workers: int
) -> Server:
    """The aiohttp floor (:mod:`bench.floor`): a bare aiohttp relay over the gateway's exchange."""
    args = ["--upstream", upstream.url, "--workers", str(workers)]
    return _start_relay(procs, tmp, cpus, "aiohttp-floor", "bench.floor", args)


def start_rawrelay(
    procs: Processes, tmp: Path, cpus: str | None, upstream: Server, workers: int
) -> Server:
    """The Python ceiling (:mod:`bench.rawrelay`): a relay on bare uvloop, no HTTP library."""
    args = ["--upstream-port", str(upstream.port), "--workers", str(workers)]
    return _start_relay(procs, tmp, cpus, "raw-relay", "bench.rawrelay", args)


def start_otlp_sink(procs: Processes, tmp: Path, cpus: str | None) -> Server:
    """A collector stand-in (:mod:`bench.otlpsink`) for the traced gateway of ``--tracing``."""
    return _start_relay(procs, tmp, cpus, "otlp-sink", "bench.otlpsink", [])


def start_parserrelay(
    procs: Processes, tmp: Path, cpus: str | None, upstream: Server, workers: int
) -> Server:
    """Option 2's floor (:mod:`bench.parserrelay`): aiohttp's C parser on a bare uvloop protocol."""
    args = ["--upstream", upstream.url, "--workers", str(workers)]
    return _start_relay(procs, tmp, cpus, "parser-relay", "bench.parserrelay", args)


def _died(proc: subprocess.Popen[bytes], log: Path) -> bool:
    if proc.poll() is not None:
        raise RuntimeError(f"process exited early ({proc.returncode}): {log.read_text()[-2000:]}")
    return False


def scrape(metrics_port: int) -> dict[str, float]:
    """The gateway's Prometheus samples (name{labels} -> value) from its metrics listener."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            try:
                out[key] = float(value)
            except ValueError:
                continue
    return out
