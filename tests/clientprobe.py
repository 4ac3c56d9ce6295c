"""What the hook's OPA client did during a test, seen through its own clock: no stopwatch in the tests.

A test that says "a failing call takes at most ``timeout``" with a stopwatch flakes on a loaded machine
and says little about why. :class:`ClientProbe` replaces the ``time`` module the client
(``_opa_client``) reads with one that records every reading and back-off sleep, wraps the watchdog's
guards and urllib3's ``urlopen``, and groups what it saw per decision call (:class:`Call`: the call
with its retries) and per health probe. Then what the wall time stood for is asserted exactly:

- :meth:`Call.assert_bounded`: every attempt ran under the one deadline the call computed when it
  started (its first reading + ``timeout``), every socket timeout it gave urllib3 ended by that deadline,
  and every back-off sleep ended before it; with the watchdog, that bounds the call;
- :meth:`Call.assert_gave_up_at_the_deadline`: retries stopped only when the next back-off could not
  end before the deadline (a failure is retried to the deadline, not given up early);
- ``attempts``, ``sleeps``, ``fired``: "at once" means one attempt, no back-off and no read the watchdog
  had to cut.

The clock is the real monotonic clock plus an offset: :meth:`ClientProbe.advance` moves the client's
time forward (a breaker's cooldown) without sleeping. The watchdog thread keeps the real clock, so an
advanced clock only makes it late, never early. One thread at a time per probe (the record in flight is
per thread).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from urllib3.connectionpool import HTTPConnectionPool

from airflow_opa_mutation import _deadline, _opa_client


@dataclass
class Request:
    """One ``urlopen`` of the client: its method and path, the urllib3 timeout, the client's last reading."""

    method: str
    path: str
    timeout: Any
    reading: float


@dataclass
class Record:
    """What the client did within one decision call or one health probe."""

    kind: str  # "decision" or "health"
    timeout: float  # the call's timeout setting (decision) or the health probe's deadline (health)
    readings: list[float] = field(default_factory=list)
    guards: list[_deadline.Guard] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    sleeps: list[tuple[float, float]] = field(default_factory=list)  # (last reading before it, the wait)
    attempts: int = 0

    @property
    def started(self) -> float:
        return self.readings[0]

    @property
    def deadline(self) -> float:
        return self.started + self.timeout

    @property
    def fired(self) -> bool:
        """Whether the watchdog had to cut a read of this call short."""
        return any(guard.fired for guard in self.guards)

    def assert_bounded(self) -> None:
        deadline = self.deadline
        assert self.guards, "no exchange was guarded by the watchdog"
        assert {guard.deadline for guard in self.guards} == {deadline}, (
            f"attempts under deadlines {sorted({g.deadline - self.started for g in self.guards})} s from the "
            f"start, not the call's one deadline ({self.timeout} s)"
        )
        for request in self.requests:
            for kind in ("connect_timeout", "read_timeout"):
                seconds = getattr(request.timeout, kind)
                # Past the deadline between two readings, the client asks for 1 ms and then stops.
                assert seconds is not None and 0 < seconds <= max(deadline - request.reading, 0.001) + 1e-9, (
                    f"{request.method} {request.path}: {kind} {seconds} s outlasts the deadline "
                    f"({deadline - request.reading:.3f} s away)"
                )
        for reading, wait in self.sleeps:
            assert reading + wait < deadline, f"a back-off of {wait} s ends past the deadline"

    def assert_gave_up_at_the_deadline(self) -> None:
        assert self.attempts >= 1
        backoff = _opa_client._BACKOFF  # the schedule the client retries on
        wait = backoff[min(self.attempts - 1, len(backoff) - 1)]
        assert self.readings[-1] + wait >= self.deadline, (
            f"gave up after {self.attempts} attempts with {self.deadline - self.readings[-1]:.3f} s left "
            f"(the next back-off: {wait} s)"
        )


class ClientProbe:
    """Installs the recording clock and wrappers for the duration of a test (``monkeypatch`` undoes them)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[Record] = []
        self.health: list[Record] = []
        self.offset = 0.0
        self._local = threading.local()
        self._real = time.monotonic
        monkeypatch.setattr(_opa_client, "time", SimpleNamespace(monotonic=self._monotonic, sleep=self._sleep))
        client = _opa_client.DecisionClient
        monkeypatch.setattr(client, "_post", self._within("decision", client._post))
        monkeypatch.setattr(client, "_post_once", self._counted(client._post_once))
        monkeypatch.setattr(client, "healthy", self._within("health", client.healthy))
        monkeypatch.setattr(_deadline.Watchdog, "guard", self._guard(_deadline.Watchdog.guard))
        monkeypatch.setattr(HTTPConnectionPool, "urlopen", self._urlopen(HTTPConnectionPool.urlopen))

    def advance(self, seconds: float) -> None:
        """Move the client's clock forward (its deadlines and the breaker's cooldown), without sleeping."""
        self.offset += seconds

    def decision(self, index: int = -1) -> Record:
        """One decision call (the last by default), with its retries."""
        assert self.calls, "no decision call was made"
        return self.calls[index]

    # -- the instruments -------------------------------------------------------------------------------

    def _current(self) -> Record | None:
        return getattr(self._local, "record", None)

    def _monotonic(self) -> float:
        now = self._real() + self.offset
        record = self._current()
        if record is not None:
            record.readings.append(now)
        return now

    def _sleep(self, seconds: float) -> None:
        record = self._current()
        if record is not None:
            record.sleeps.append((record.readings[-1], seconds))
        time.sleep(seconds)

    def _within(self, kind: str, method: Any) -> Any:
        probe = self

        def wrapper(client: Any, *args: Any, **kwargs: Any) -> Any:
            timeout = client.settings.timeout if kind == "decision" else client.health_timeout
            record = Record(kind, timeout)
            (probe.calls if kind == "decision" else probe.health).append(record)
            outer, probe._local.record = probe._current(), record
            try:
                return method(client, *args, **kwargs)
            finally:
                probe._local.record = outer

        return wrapper

    def _counted(self, method: Any) -> Any:
        probe = self

        def wrapper(client: Any, *args: Any, **kwargs: Any) -> Any:
            record = probe._current()
            if record is not None:
                record.attempts += 1
            return method(client, *args, **kwargs)

        return wrapper

    def _guard(self, original: Any) -> Any:
        probe = self

        @contextmanager
        def guard(watchdog: Any, deadline: float) -> Iterator[_deadline.Guard]:
            with original(watchdog, deadline) as armed:
                record = probe._current()
                if record is not None:
                    record.guards.append(armed)
                yield armed

        return guard

    def _urlopen(self, original: Any) -> Any:
        probe = self

        def urlopen(pool: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            record = probe._current()
            if record is not None:
                reading = record.readings[-1] if record.readings else float("nan")
                record.requests.append(Request(method, url, kwargs.get("timeout"), reading))
            return original(pool, method, url, *args, **kwargs)

        return urlopen
