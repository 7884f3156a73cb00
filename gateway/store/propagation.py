"""Push propagation: store notifications wake the change feed, so caches drop stale entries at once.

A store that can push (PostgreSQL ``LISTEN/NOTIFY``; see :meth:`PostgresStore.listen`) calls
:meth:`ChangeFeed.wake` for every committed change, and once after every (re)connect so anything
sent while the connection was down is read from the change sequence. The feed's periodic resync
(``cache.poll_interval`` ≤ 1 s) keeps running underneath: notifications make revocation fast,
the resync makes it certain. Stores that cannot push (SQLite) simply rely on the resync.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from gateway.app import Gateway

__all__ = ["Notifier", "install"]


@runtime_checkable
class Notifier(Protocol):
    def listen(
        self, on_change: Callable[[], None], on_state: Callable[[bool], None] | None = None
    ) -> Coroutine[Any, Any, None]: ...


def install(gw: Gateway) -> None:
    store = gw.store
    if not isinstance(store, Notifier):
        return
    feed = gw.feed
    feed.listening = False
    gw.background.append(lambda: store.listen(feed.wake, feed.set_listening))
