"""The README's first command: `gateway demo` on the shipped gateway.yaml, as a user runs it.

It must print a working token with curl lines whose promised answers hold, and a dashboard sign-in
link that signs in. Ports and the store come from the environment the config documents, so the
test runs beside anything else on the machine.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.served import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    port, admin, metrics, up = free_port(), free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "GATEWAY_PORT": str(port),
        "GATEWAY_ADMIN_PORT": str(admin),
        "GATEWAY_METRICS_PORT": str(metrics),
        "GATEWAY_STORE": f"sqlite:///{tmp_path}/demo.db",
        # No UPSTREAM_URL: the demo points the config at its own upstream on --upstream-port.
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "demo", "--upstream-port", str(up)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        for line in proc.stdout:  # the banner ends with "Ctrl-C stops it."
            lines.append(line)
            if "Ctrl-C stops it." in line or time.monotonic() > deadline:
                break
        yield f"http://127.0.0.1:{port}", lines
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


async def test_the_demo_prints_a_token_and_curls_that_answer_as_promised(
    demo: tuple[str, list[str]],
) -> None:
    base, lines = demo
    text = "".join(lines)
    assert f"Gateway running on {base}" in text
    curls = [ln.strip() for ln in lines if ln.strip().startswith("curl ")]
    assert len(curls) == 4, text
    async with aiohttp.ClientSession() as http:
        for line in curls:
            command, _, comment = line.partition("#")
            expected = int(re.search(r"\b(\d{3})\b", comment).group(1))  # type: ignore[union-attr]
            method = "POST" if "-X POST" in command else "GET"
            url = re.search(r"(http://\S+)", command).group(1)  # type: ignore[union-attr]
            headers = dict(h.split(": ", 1) for h in re.findall(r'-H "([^"]+)"', command))
            async with http.request(method, url, headers=headers) as r:
                assert r.status == expected, (line, r.status, await r.text())


async def test_the_demo_prints_a_dashboard_link_that_signs_in(
    demo: tuple[str, list[str]],
) -> None:
    base, lines = demo
    link = next((ln.strip() for ln in lines if "/login?t=" in ln), None)
    assert link is not None and link.startswith(base), "".join(lines)
    async with aiohttp.ClientSession() as http, http.get(link) as r:
        page = await r.text()
    assert r.status == 200 and "Sign in as demo@example.com" in page


def _readme_sample() -> list[str]:
    """The demo's output as the README shows it (the block after "It prints")."""
    text = (ROOT / "README.md").read_text()
    block = text.split("It prints", 1)[1].split("```\n", 1)[1].split("\n```", 1)[0]
    return block.splitlines()


def _as_pattern(line: str) -> re.Pattern[str]:
    """A README line as a pattern: ``…`` stands for the rest of a token, ports may differ, and
    runs of spaces (curl comments are aligned to the full-length tokens) are any spacing."""
    parts = []
    for word in line.split():
        pat = re.escape(word).replace("…", r"\S*")
        parts.append(re.sub(r"127\\\.0\\\.0\\\.1:\d+", r"127\\.0\\.0\\.1:\\d+", pat))
    return re.compile(r"\s+".join(parts))


async def test_the_readme_shows_what_the_demo_prints(demo: tuple[str, list[str]]) -> None:
    _, lines = demo
    printed = "".join(lines).strip("\n").splitlines()
    sample = _readme_sample()
    assert len(printed) == len(sample), "\n".join(printed)
    for want, got in zip(sample, printed, strict=True):
        assert _as_pattern(want).fullmatch(got.strip()) or want == got == "", (want, got)
