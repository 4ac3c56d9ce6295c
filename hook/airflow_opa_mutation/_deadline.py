"""A wall-clock deadline for one HTTP exchange with OPA, headers and body included.

Socket timeouts bound each ``recv`` separately: a peer that dribbles its answer out a byte at a time
(a wedged proxy, a slow-loris) never trips them, and the call could outlast ``timeout`` many times
over. So the decision pool's connections register their socket with one per-process watchdog thread
while a response is read; if the deadline passes first, the watchdog shuts the socket down, the
blocked read returns at once, and the call reports the timeout.

A guard is disarmed (under the watchdog's lock) before its connection goes back to the pool, so the
watchdog can never shut down a connection another request has picked up since.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection


class Guard:
    """The deadline of one exchange, and the socket to shut down if it passes."""

    __slots__ = ("armed", "deadline", "fired", "sock")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.sock: socket.socket | None = None
        self.armed = True
        self.fired = False


class Watchdog:
    """One daemon thread per process that enforces the deadlines of in-flight exchanges."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._counter = itertools.count()
        self._setup()
        # A forked child inherits the parent's heap and lock state but not its thread: start afresh.
        os.register_at_fork(after_in_child=self._setup)

    def _setup(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Guard]] = []
        self._thread: threading.Thread | None = None

    @contextmanager
    def guard(self, deadline: float) -> Iterator[Guard]:
        """Within this block, a decision-pool connection that reads a response is watched."""
        guard = Guard(deadline)
        self._local.guard = guard
        try:
            yield guard
        finally:
            self._local.guard = None
            self.disarm(guard)

    def disarm(self, guard: Guard) -> None:
        if guard.armed:
            with self._cond:
                guard.armed = False

    def watch(self, sock: socket.socket | None) -> None:
        """Called by a connection about to read a response on ``sock``."""
        guard: Guard | None = getattr(self._local, "guard", None)
        if guard is None or sock is None or not guard.armed:
            return
        with self._cond:
            guard.sock = sock
            first = not self._heap or guard.deadline < self._heap[0][0]
            heapq.heappush(self._heap, (guard.deadline, next(self._counter), guard))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="opa-deadline-watchdog", daemon=True)
                self._thread.start()
            elif first:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                # Exchanges that finished in time leave disarmed entries: drop them now rather than
                # waking up at each of their deadlines.
                while self._heap and not self._heap[0][2].armed:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, _, guard = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                if not guard.armed or guard.sock is None:
                    continue
                guard.armed = False
                guard.fired = True
                sock = guard.sock
                # The plain socket's shutdown, also for a TLS socket: it wakes a blocked read at once.
                with suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)


WATCHDOG = Watchdog()


class DeadlineHTTPConnection(HTTPConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        WATCHDOG.watch(self.sock)
        return super().getresponse(*args, **kwargs)


class DeadlineHTTPSConnection(HTTPSConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        WATCHDOG.watch(self.sock)
        return super().getresponse(*args, **kwargs)
