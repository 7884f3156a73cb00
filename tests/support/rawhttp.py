"""HTTP over a bare socket, for requests no well-behaved client library will send.

Attack and smuggling tests need byte-exact requests: duplicate or conflicting framing headers, raw
control characters, unnormalized paths. This speaks to 127.0.0.1 only and every read is bounded by
a timeout, so a test can never hang on a server that keeps a connection open.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    # True when the server closed the connection after this response (read to EOF).
    closed: bool = False
    extra: bytes = field(default=b"")  # anything the server sent after the first response

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str | None:
        try:
            return str(self.json()["error"]["code"])
        except (ValueError, KeyError, TypeError):
            return None


def request_bytes(
    method: str, target: str, headers: list[tuple[str, str]] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers or []]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def parse(data: bytes, closed: bool) -> RawResponse:
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        raise AssertionError(f"no complete response head in {data[:200]!r}")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in header_lines:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", len(rest)))
    return RawResponse(status, headers, rest[:length], closed, rest[length:])


async def exchange(
    port: int, data: bytes, timeout: float = 5.0, *, to_close: bool = False
) -> RawResponse:
    """Send ``data`` and parse the first response.

    Reads until that response is complete, or with ``to_close`` until the server closes the
    connection (``closed`` then tells whether it did within ``timeout``, and ``extra`` holds
    anything sent after the first response).
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        received = b""
        closed = False
        try:
            async with asyncio.timeout(timeout):
                while True:
                    chunk = await reader.read(65536)
                    if not chunk:
                        closed = True
                        break
                    received += chunk
                    if not to_close and _complete(received):
                        break
        except TimeoutError:
            pass
        except ConnectionResetError:
            closed = True
        if not received:
            raise AssertionError("the server sent no response")
        return parse(received, closed)
    finally:
        writer.close()


def _complete(data: bytes) -> bool:
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return len(rest) >= int(v.strip())
    return False


async def read_until_closed(reader: asyncio.StreamReader, timeout: float) -> tuple[bytes, bool]:
    """Everything the server sends until it closes (``True``) or ``timeout`` passes (``False``)."""
    data = b""
    try:
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                data += chunk
    except TimeoutError:
        return data, False
    except ConnectionResetError:
        pass
    return data, True
