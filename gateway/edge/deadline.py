"""Whole-request deadlines for every in-flight request, kept with one event-loop timer.

``asyncio.timeout`` arms and cancels an event-loop timer per use (a libuv timer under uvloop: about
5 µs per request, for a deadline that almost never fires). :class:`Deadlines` instead records each
request's task and deadline in a dict per timeout value — insertion order is deadline order, since
the loop clock only moves forward — and keeps a single timer armed for the earliest deadline. When
it fires, overdue tasks are cancelled and the timer is re-armed for the next deadline, so a busy
gateway arms about one timer per timeout period instead of one per request.

Expiry behaves as ``asyncio.timeout`` does: the task is cancelled, and :meth:`Deadlines.leave`
reports the expiry (after ``Task.uncancel``) only when no other cancellation is pending, so the
caller turns that CancelledError into its timeout error and lets any other one propagate.
"""

from __future__ import annotations

import asyncio
import math

__all__ = ["Deadline", "Deadlines"]

# (task, task.cancelling() on entry): what leave() needs to tell our cancellation from others.
Deadline = tuple["asyncio.Task[object]", int]


class Deadlines:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        # timeout -> {task: deadline}, each in deadline order; several timeouts across reloads.
        self._pending: dict[float, dict[asyncio.Task[object], float]] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def enter(self, timeout: float | None) -> Deadline | None:
        """Start the current task's deadline, ``timeout`` seconds from now (None: no deadline)."""
        if timeout is None:
            return None
        loop = self._loop
        if loop is None:
            loop = asyncio.get_running_loop()
            self.bind(loop)
        task: asyncio.Task[object] | None = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("a deadline needs a task")
        when = loop.time() + timeout
        bucket = self._pending.get(timeout)
        if bucket is None:
            bucket = self._pending[timeout] = {}
        bucket[task] = when
        if when < self._timer_at:
            self._arm(loop, when)
        return task, task.cancelling()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve requests on ``loop`` from now on (the gateway calls this when it starts).

        Taken once rather than per request: on Python 3.11 asyncio.get_running_loop() makes a
        getpid() system call each time. A new loop (tests run several) carries nothing over.
        """
        if loop is not self._loop:
            self.close()
            self._loop = loop

    def unbind(self) -> None:
        """Forget the loop (the gateway stopped); the next start or request binds again."""
        self.close()
        self._loop = None

    def leave(self, deadline: Deadline | None) -> bool:
        """End a deadline; True when it expired and cancelled the task, and nothing else did."""
        if deadline is None:
            return False
        task, cancelling = deadline
        if task not in self._expired:
            for bucket in self._pending.values():
                if bucket.pop(task, None) is not None:
                    break
            return False
        self._expired.discard(task)
        return task.uncancel() <= cancelling

    def close(self) -> None:
        """Drop every deadline and the timer (the loop is going away)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, math.inf
        self._pending.clear()
        self._expired.clear()

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(when, self._fire)
        self._timer_at = when

    def _fire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        assert self._loop is not None
        now = self._loop.time()
        earliest = math.inf
        for timeout, bucket in list(self._pending.items()):
            overdue = []
            for task, when in bucket.items():
                if when > now:
                    earliest = min(earliest, when)
                    break
                overdue.append(task)
            for task in overdue:
                del bucket[task]
                self._expired.add(task)
                task.cancel()
            if not bucket:
                del self._pending[timeout]
        if earliest != math.inf:
            self._arm(self._loop, earliest)
