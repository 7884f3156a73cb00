"""Issue 23: the config file watcher loads a file only once it is stable across two checks.

A file written in place in two parts (an editor's or a copy's partial write, a pause between
them) must not be loaded with only its first routes. Each check is driven by the test, so the
assertion does not depend on timing.
"""

from __future__ import annotations

import aiohttp

from gateway.process.reload import Reloader
from tests.conftest import GatewayFactory
from tests.support.core_config import CORE
from tests.support.harness import Upstream


async def test_a_file_written_in_place_is_loaded_only_once_complete(
    make_gateway: GatewayFactory, upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    subs = {"up": upstream.url, "sandbox": upstream.url, "timeout": 2, "trusted": "10.0.0.1/32"}
    g = await make_gateway(CORE, **subs)
    full = g.config_path.read_text()
    routes = len(g.gw.config.routes)
    watcher = Reloader(g.gw, str(g.config_path))
    assert not watcher.check()  # nothing changed

    partial = full[: full.index("  - {name: items-read,")]
    assert "items-read" not in partial and "public" in partial
    g.config_path.write_text(partial)  # the first part, written in place ...
    assert not watcher.check()  # seen once: not loaded yet
    g.config_path.write_text(full + "  - {name: extra, path: /extra/**, public: true}\n")
    assert not watcher.check()  # ... the rest arrived: changed again, still not loaded
    assert len(g.gw.config.routes) == routes
    async with http.get(f"{g.url}/api/items/1") as r:
        assert r.status == 401  # the route is still there (a 404 would mean it was lost)
    assert watcher.check()  # unchanged since the last look: loaded, whole
    assert len(g.gw.config.routes) == routes + 1
    assert not watcher.check()
