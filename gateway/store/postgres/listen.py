"""Push propagation from PostgreSQL: one dedicated connection that ``LISTEN``s on
``gateway_changes`` (a trigger NOTIFYs on every ``changes`` insert) and reconnects by itself.

What it wakes is :mod:`gateway.store.propagation`'s concern; this module only keeps the listening
connection alive and reports each notification of this schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

import asyncpg

from gateway.core.errors import StoreUnavailable
from gateway.store.postgres.connection import ALL_ERRORS, PostgresConnection

__all__ = ["ChangeListener"]

# The store's logger: this job was part of the store's one module, and operators filter on it.
log = logging.getLogger("gateway.store.postgres")

CHANNEL = "gateway_changes"
_LISTEN_ERRORS: tuple[type[BaseException], ...] = (*ALL_ERRORS, StoreUnavailable)


class ChangeListener(PostgresConnection):
    """:meth:`listen`: the :class:`~gateway.store.propagation.Notifier` of the PostgreSQL store."""

    async def listen(
        self, on_change: Callable[[], None], on_state: Callable[[bool], None] | None = None
    ) -> None:
        """LISTEN for change notifications until cancelled, reconnecting after every loss.

        ``on_change`` is called for each notification of this schema, and once after every
        (re)connect, because notifications sent while we were not listening are lost: the caller
        resyncs from the change sequence then. ``on_state(True/False)`` reports the connection.
        """
        backoff = 0.1
        # One line per outage, not one per failed reconnect attempt: logged when a connection
        # that was up fails, or on the first failure of all.
        logged = False
        connected = False

        def report(up: bool) -> None:
            nonlocal connected
            connected = connected or up
            if on_state is not None:
                on_state(up)

        while True:
            connected = False
            try:
                await self._listen_once(on_change, report)
            except _LISTEN_ERRORS as exc:
                if connected or not logged:
                    log.warning(
                        "change listener connection lost (%s); reconnecting", type(exc).__name__
                    )
                logged = True
            else:
                backoff = 0.1  # it was up, then went away: reconnect promptly
            if on_state is not None:
                on_state(False)
            await asyncio.sleep(backoff * (1 + random.random() / 2))
            backoff = min(backoff * 2, 5.0)

    async def _listen_once(
        self, on_change: Callable[[], None], on_state: Callable[[bool], None] | None
    ) -> None:
        """One listening connection, from connect until it is lost (returns) or fails (raises)."""
        lost = asyncio.Event()
        name = f"gateway-listener:{self.schema or 'public'}"[:63]
        conn = await asyncpg.connect(
            self.dsn,
            timeout=self.connect_timeout,
            server_settings={**self._server_settings(), "application_name": name},
        )
        try:
            schema = await conn.fetchval("SELECT current_schema()")

            def notified(_c: object, _pid: int, _channel: str, payload: str) -> None:
                if payload.partition(":")[0] == schema:
                    on_change()

            conn.add_termination_listener(lambda _c: lost.set())
            await conn.add_listener(CHANNEL, notified)
            if on_state is not None:
                on_state(True)
            on_change()  # catch up on anything missed while not listening
            # A half-open TCP connection never terminates by itself: probe it now and then.
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), timeout=5.0)
                if not lost.is_set():
                    await conn.fetchval("SELECT 1", timeout=self.connect_timeout)
        finally:
            if not conn.is_closed():
                conn.terminate()
