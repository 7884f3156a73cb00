"""gateway.edge.listen.StrictParser over both of aiohttp's request parsers (C llhttp and pure Python).

Each case records what the bare parser does with the request (the finding behind issue 17 §4:
where it accepts what HTTP/1.1 forbids) and checks that the wrapped parser refuses it with the
status the listener answers. The end-to-end cases run in tests/e2e/test_attacks.py; this file
covers the pure-Python parser too, which the running gateway only uses without the C extension.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import http_exceptions, http_parser
from aiohttp.base_protocol import BaseProtocol

from gateway.edge.listen import EdgeRefusal, StrictParser

PARSERS = {"python": http_parser.HttpRequestParserPy}
if hasattr(http_parser, "HttpRequestParserC"):
    PARSERS["llhttp"] = http_parser.HttpRequestParserC

# (request, {parser: what the bare parser does}, status the listener answers for what it accepts)
# "0.9" / "2.0" / "1.1": accepted with that version; "refused": the bare parser refuses it itself
# (the listener then answers 400, as for any parse error).
CASES: dict[str, tuple[bytes, dict[str, str], int]] = {
    "bare-lf-request-line": (
        b"GET /x\nHost: a\r\nX-Gateway-User-Id: evil\r\n\r\n",
        {"llhttp": "0.9", "python": "refused"},
        400,
    ),
    "http-0.9": (b"GET /x\r\n\r\n", {"llhttp": "0.9", "python": "refused"}, 400),
    "http-2.0": (b"GET /x HTTP/2.0\r\nHost: a\r\n\r\n", {"llhttp": "2.0", "python": "2.0"}, 505),
    "http-3.0": (
        b"GET /x HTTP/3.0\r\nHost: a\r\n\r\n",
        {"llhttp": "refused", "python": "3.0"},
        505,
    ),
    "te-gzip-chunked": (
        b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        {"llhttp": "1.1", "python": "1.1"},
        501,
    ),
}


def _parser(cls: Any, loop: asyncio.AbstractEventLoop) -> Any:
    return cls(BaseProtocol(loop), loop, 2**16, max_line_size=8190, max_field_size=8190)


def _bare(cls: Any, loop: asyncio.AbstractEventLoop, data: bytes) -> str:
    try:
        messages, _, _ = _parser(cls, loop).feed_data(data)
    except http_exceptions.HttpProcessingError:
        return "refused"
    (message, _), *_ = messages
    return f"{message.version.major}.{message.version.minor}"


@pytest.mark.parametrize("parser", sorted(PARSERS))
@pytest.mark.parametrize("case", sorted(CASES))
async def test_strict_parser_refuses_what_the_bare_parser_accepts(parser: str, case: str) -> None:
    loop = asyncio.get_running_loop()
    cls = PARSERS[parser]
    data, bare, status = CASES[case]
    assert _bare(cls, loop, data) == bare[parser]
    strict = StrictParser(_parser(cls, loop))
    with pytest.raises(http_exceptions.HttpProcessingError) as refused:
        strict.feed_data(data)
    if isinstance(refused.value, EdgeRefusal):
        assert refused.value.status == status
    else:
        assert bare[parser] == "refused"
    # Nothing more is parsed on that connection: a pipelined request after it yields nothing.
    if isinstance(refused.value, EdgeRefusal):
        assert strict.feed_data(b"GET /y HTTP/1.1\r\nHost: a\r\n\r\n") == ((), False, b"")


@pytest.mark.parametrize("parser", sorted(PARSERS))
async def test_strict_parser_passes_http11_and_http10(parser: str) -> None:
    loop = asyncio.get_running_loop()
    strict = StrictParser(_parser(PARSERS[parser], loop))
    messages, _, _ = strict.feed_data(
        b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n"
    )
    assert [m.path for m, _ in messages] == ["/a", "/b"]
    strict = StrictParser(_parser(PARSERS[parser], loop))
    messages, _, _ = strict.feed_data(b"GET /c HTTP/1.0\r\n\r\n")
    assert [m.version.minor for m, _ in messages] == [0]
