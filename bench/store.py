"""The benchmark's token store: a real SQLite store holding N tokens, built fast and cached.

Tokens are derived deterministically from their index (``token(i)``), so the store can be cached
under ``bench/.cache`` without keeping any plaintext: the load generator's token files are
regenerated into the run's temporary directory. The schema comes from the gateway's own migrations
and the workspace from its own service layer; only the N token rows go in by one bulk
``executemany`` inside a single transaction (a million rows in seconds rather than hours of
one-by-one minting).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

from gateway.config import Config
from gateway.core import tokens
from gateway.management.services import Services
from gateway.store.migrations import migrations
from gateway.store.sqlite import SQLiteStore

__all__ = ["PREFIX", "WORKSPACE_SLUG", "build_store", "token", "write_tokens"]

PREFIX = "gw_live_"
WORKSPACE_SLUG = "bench"
CACHE_DIR = Path(__file__).resolve().parent / ".cache"
# base62 character for every byte value: turns hash output into a token body without a bignum loop.
_COLUMNS = (
    "id, name, kind, type_prefix, environment, visible_prefix, scopes, workspace_id, user_id, "
    "created_at, expires_at, revoked_at, last_used_at, allowed_domains, created_by, client_id, "
    "grant_id"
)
_B62 = bytes.maketrans(bytes(range(256)), bytes(ord(tokens.BASE62[b % 62]) for b in range(256)))


def token(i: int) -> str:
    """The i-th benchmark token: the gateway's minted shape (prefix, 40 base62, CRC32 checksum)."""
    body = hashlib.sha512(b"gateway-bench-%d" % i).digest()[: tokens.RANDOM_LENGTH]
    random_part = body.translate(_B62).decode("ascii")
    return f"{PREFIX}{random_part}{tokens.checksum(random_part)}"


def write_tokens(path: Path, start: int, count: int) -> Path:
    """Write tokens ``start .. start+count-1``, one a line (for wrk's tokens.lua)."""
    with path.open("w") as f:
        f.writelines(token(i) + "\n" for i in range(start, start + count))
    return path


def _schema_tag() -> str:
    h = hashlib.sha256()
    for version, sql in migrations("sqlite"):
        h.update(f"{version}:{sql}".encode())
    return h.hexdigest()[:10]


async def _create_workspace(db_path: Path, config: Config) -> str:
    store = SQLiteStore(f"sqlite:///{db_path}")
    await store.open()
    try:
        ws = await Services(store, config).create_workspace(name="Bench", slug=WORKSPACE_SLUG)
        return ws.id
    finally:
        await store.close()


def _bulk_insert(db_path: Path, workspace_id: str, count: int) -> None:
    hasher = tokens.TokenHasher(None)
    now = time.time()
    scopes = json.dumps(["items:read"])

    def rows() -> object:
        for i in range(count):
            plain = token(i)
            yield (
                f"tok_bench{i:09d}",
                f"bench {i}",
                "api_key",
                PREFIX,
                "live",
                plain[: tokens.VISIBLE_PREFIX_LENGTH],
                scopes,
                workspace_id,
                None,
                now,
                None,
                None,
                None,
                "[]",
                "bench",
                None,
                None,
                hasher(plain),
            )

    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        db.execute("PRAGMA synchronous=OFF")
        db.execute("BEGIN")
        db.execute(f"CREATE TEMP TABLE staged ({_COLUMNS}, hash)")
        db.executemany(f"INSERT INTO staged VALUES ({', '.join('?' * 18)})", rows())  # type: ignore[arg-type]
        db.execute(f"INSERT INTO tokens ({_COLUMNS}) SELECT {_COLUMNS} FROM staged")
        # Sorted by hash: the WITHOUT ROWID primary key then fills its B-tree in order.
        db.execute("INSERT INTO token_secrets SELECT hash, id, NULL FROM staged ORDER BY hash")
        db.execute("DROP TABLE staged")
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


def build_store(count: int, config: Config, dest: Path, log: object = print) -> Path:
    """A SQLite file at ``dest`` holding ``count`` tokens in workspace ``bench``; cached by size."""
    CACHE_DIR.mkdir(exist_ok=True)
    cached = CACHE_DIR / f"store-{count}-{_schema_tag()}.db"
    if not cached.exists():
        started = time.monotonic()
        # A name of this build's own: parallel test workers (pytest-xdist) may build the same
        # cache at once; each finishes its own file and the atomic replace keeps one whole.
        tmp = cached.with_suffix(f".building-{os.getpid()}")
        tmp.unlink(missing_ok=True)
        ws_id = asyncio.run(_create_workspace(tmp, config))
        _bulk_insert(tmp, ws_id, count)
        for suffix in ("-wal", "-shm"):
            Path(f"{tmp}{suffix}").unlink(missing_ok=True)
        os.replace(tmp, cached)
        log(f"built a {count:,}-token store in {time.monotonic() - started:.1f}s: {cached}")  # type: ignore[operator]
    # Each run gets its own copy: the gateway writes last_used_at and the change feed into it.
    shutil.copyfile(cached, dest)
    return dest
