"""Asking OPA for a decision: one keep-alive pool, one overall deadline, typed failures.

This is the hook's only way to OPA, and it speaks urllib3 directly rather than through a client library
(opa-python-client serves OPA's management API in the command line, ``cli/_opa_admin``): the contract
needs one deadline bounding the whole call with its retries (a urllib3 ``Retry`` backs off past any
timeout), a cap on the response size, a token re-read from its file per request (rotated secrets), the
HTTP status kept for the error, and a cost near the raw round trip (the scheduler waits on every call):
the request goes straight to a urllib3 connection pool, the transport requests itself uses, skipping
~0.2 ms of requests' per-call work, and a process running the hook never imports opa-python-client
(nor the aiohttp it pulls in: +0.34-0.48 s at the first pod).
URL, TLS files and token come from ``_opa_endpoint``, shared with the command line.
"""

from __future__ import annotations

import ipaddress
import os
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

import urllib3
from urllib3.exceptions import (
    HTTPError as _Urllib3Error,
)
from urllib3.exceptions import (
    NewConnectionError,
    ProtocolError,
    SSLError,
)
from urllib3.exceptions import (
    TimeoutError as _Urllib3Timeout,
)

from . import _json
from ._deadline import WATCHDOG, DeadlineHTTPConnection, DeadlineHTTPSConnection, Guard
from ._opa_endpoint import opa_endpoint
from .config import Settings
from .errors import Message, OpaUnavailable, PatchRejected, PodDenied, PodRef

#: Statuses worth another try within the deadline: OPA (or a proxy in front of it) was briefly sick.
RETRY_STATUSES = frozenset({500, 502, 503, 504})
_BACKOFF = (0.05, 0.1, 0.2, 0.4)
#: The longest the health probe after a failed decision call may take (seconds).
HEALTH_TIMEOUT = 0.5
_HEALTH_BODY_LIMIT = 4096
#: The ``policy`` of the message of a pod denied because OPA, healthy, could not decide on it.
POD_CAUSED = "airflow-opa-mutation"


@dataclass(frozen=True)
class OpaResponse:
    body: Any
    status: int
    elapsed: float
    attempts: int


class CircuitBreaker:
    """Fail fast while OPA is known to be down, so a dead sidecar cannot stall the scheduler.

    After ``threshold`` consecutive failures the breaker opens: calls fail at once for ``cooldown``
    seconds. Then exactly one call goes through as a probe; its success closes the breaker, its failure
    opens it for another cooldown. Calls arriving while the probe is in flight fail fast too.
    Only failures no pod can cause count (OPA unhealthy too, or refusing our credentials): a hostile
    pod cannot open it for everyone else (``DecisionClient.post``).
    """

    def __init__(self, threshold: int, cooldown: float) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._failures = 0
        self._open_until = 0.0
        self._probing = False
        self._lock = threading.Lock()

    def admit(self) -> str | None:
        """``None`` when the call may go ahead, else why it must fail fast."""
        with self._lock:
            if self._failures < self.threshold:
                return None
            now = time.monotonic()
            if now < self._open_until:
                wait = self._open_until - now
                return f"circuit breaker open after {self._failures} consecutive failures; next try in {wait:.1f}s"
            if self._probing:
                return "circuit breaker open; a probe call to OPA is in flight"
            self._probing = True
            return None

    def record(self, ok: bool) -> None:
        with self._lock:
            self._probing = False
            if ok:
                self._failures = 0
                return
            self._failures += 1
            if self._failures >= self.threshold:
                self._open_until = time.monotonic() + self.cooldown


class DecisionClient:
    """POSTs inputs to ``{url}/v1/data/{decision_path}``; safe to share across threads and forks."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.endpoint = opa_endpoint(settings)
        self.decision_url = f"{settings.url}/v1/data/{settings.decision_path}"
        self.health_url = f"{settings.url}/health"
        self._path = f"{self.endpoint.prefix}/v1/data/{settings.decision_path}"
        self._health_path = f"{self.endpoint.prefix}/health?bundles=true"
        self._liveness_path = f"{self.endpoint.prefix}/health"
        self._lock = threading.Lock()
        self._pid = -1
        self._pool: urllib3.HTTPConnectionPool | None = None
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.endpoint.token_file is None:
            self._headers.update(self.endpoint.authorization())  # fixed: sent as is with every request
        self.breaker = CircuitBreaker(settings.breaker_threshold, settings.breaker_cooldown)
        _CLIENTS.add(self)

    # -- the connection pool, rebuilt in a forked child ------------------------------------------------

    def _after_fork_in_child(self) -> None:
        """A lock another thread held at ``fork()`` stays locked forever in the child: replace them all.

        Only the forking thread exists in the child, so nothing else can be using them right now.
        """
        self._lock = threading.Lock()
        self.breaker._lock = threading.Lock()
        self.breaker._probing = False  # a probe in flight belonged to a parent thread
        self.endpoint.after_fork_in_child()

    def _decision_pool(self) -> urllib3.HTTPConnectionPool:
        pid = os.getpid()
        if self._pid != pid:
            with self._lock:
                if self._pid != pid:
                    # After fork() the parent's sockets are shared with the child: never reuse them.
                    self._pool = self._build_pool()
                    self._pid = pid
        assert self._pool is not None
        return self._pool

    def _build_pool(self) -> urllib3.HTTPConnectionPool:
        endpoint = self.endpoint
        pool: urllib3.HTTPConnectionPool
        if not endpoint.https:
            pool = urllib3.HTTPConnectionPool(endpoint.host, endpoint.port, maxsize=64, block=False, retries=False)
            pool.ConnectionCls = DeadlineHTTPConnection  # the deadline covers reading the answer too
            return pool
        pool = urllib3.HTTPSConnectionPool(
            endpoint.host, endpoint.port, maxsize=64, block=False, retries=False, **endpoint.urllib3_tls()
        )
        pool.ConnectionCls = DeadlineHTTPSConnection
        return pool

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
            self._pool = None
            self._pid = -1

    # -- calls -----------------------------------------------------------------------------------------

    def _request_headers(self) -> dict[str, str]:
        """The headers of one request: a token from ``token_file`` is re-read (rotated secrets)."""
        if self.endpoint.token_file is None:
            return self._headers
        return {**self._headers, **self.endpoint.authorization()}

    def require_bundles(self, *, pod: PodRef | None = None) -> None:
        """Raise :class:`OpaUnavailable` unless OPA has activated all its bundles (``/health?bundles``).

        Goes through the decision pool, the breaker and ``timeout`` like a decision, and tells an OPA
        that is unreachable apart from one that answers but is still without its bundles.
        """
        refused = self.breaker.admit()
        if refused is not None:
            raise self._unavailable(refused, None, pod)
        ok = False
        try:
            try:
                response = self._decision_pool().urlopen(
                    "GET",
                    self._health_path,
                    headers=self._request_headers(),
                    timeout=urllib3.Timeout(connect=self.settings.timeout, read=self.settings.timeout),
                    retries=False,
                    redirect=False,
                    assert_same_host=False,
                )
            except (NewConnectionError, ProtocolError, ConnectionError) as exc:
                raise self._unavailable(self._cannot_connect(exc), None, pod) from None
            except _Urllib3Error as exc:
                raise self._unavailable(f"OPA's health check failed: {_root_cause(exc)}", None, pod) from None
            ok = True  # OPA answered: a missing bundle is not a transport failure for the breaker
            if response.status != 200:
                raise OpaUnavailable(
                    f"OPA is not ready: it has not activated its bundles yet ({self.health_url}?bundles=true "
                    f"answered HTTP {response.status}: {_error_text(response.data)}; see OPA's log for the "
                    "bundle's download or signature errors)",
                    status=response.status,
                    pod=pod,
                    decision_path=self.settings.decision_path,
                )
        finally:
            self.breaker.record(ok)

    def query(
        self,
        payload: dict[str, Any],
        *,
        params: str = "",
        pod: PodRef | None = None,
    ) -> OpaResponse:
        """POST ``{"input": payload}`` and return the parsed body; every failure is :class:`OpaUnavailable`.

        An input that is not JSON at all (a string with a lone surrogate, as ``surrogateescape`` decoding
        makes of undecodable bytes; an integer beyond 64 bits) is :class:`PatchRejected`, the error the
        hook gives a pod it cannot serialize: the JSON encoder's bare TypeError/ValueError would escape
        the hook's error handling, fail_mode=open included.
        """
        try:
            body = _json.dumps({"input": payload})
        except (TypeError, ValueError, OverflowError) as exc:
            raise PatchRejected(
                f"the pod cannot be serialized: not valid JSON ({type(exc).__name__}: {exc})",
                pod=pod,
                decision_path=self.settings.decision_path,
            ) from None
        return self.post(body, params=params, pod=pod)

    def post(self, body: bytes, *, params: str = "", pod: PodRef | None = None) -> OpaResponse:
        """POST ``body``; a failed decision call is judged by OPA's health (see :meth:`healthy`).

        OPA healthy: the pod made the call fail (an input OPA takes too long over, a response too large)
        and :class:`PodDenied` is raised, in both fail modes, and the breaker does not count it. Only
        when OPA is unhealthy or unreachable too, or refused our credentials (401/403, never the pod's
        doing), is it :class:`OpaUnavailable`, which ``fail_mode = open`` may let through.
        """
        refused = self.breaker.admit()
        if refused is not None:
            raise self._unavailable(refused, None, pod)
        ok = False
        try:
            response = self._post(body, params, pod)
            ok = True
        except OpaUnavailable as exc:
            if exc.status in (401, 403):
                raise
            if self.healthy():
                ok = True  # OPA is fine: nothing for the breaker to count
                raise PodDenied(
                    [Message(f"OPA is healthy but could not decide on this pod: {exc.reason}", POD_CAUSED)],
                    pod=pod,
                    decision_path=self.settings.decision_path,
                ) from None
            raise OpaUnavailable(
                f"{exc.reason}; OPA's /health failed too",
                status=exc.status,
                pod=pod,
                decision_path=self.settings.decision_path,
            ) from None
        finally:
            self.breaker.record(ok)
        return response

    @property
    def health_timeout(self) -> float:
        """The health probe's deadline. Not a fraction of ``timeout``: after a timed-out call the probe
        often needs a new connection (and TLS handshake), and a probe cut too short would let a pod that
        made OPA slow pass as an outage. Only a hung OPA costs it in full, until the breaker opens."""
        return HEALTH_TIMEOUT

    def healthy(self) -> bool:
        """Whether OPA answers ``GET /health`` with 200 and its small JSON object within
        :attr:`health_timeout`.

        Same pool, TLS and token as a decision call (an authz policy must allow ``/health``, as OPA's
        docs recommend for liveness probes); no retry; never raises. A proxy in front of OPA that
        mangles answers (an HTML error page, a truncated or huge body) fails it as it fails decisions.
        """
        deadline = time.monotonic() + self.health_timeout
        try:
            headers = self._request_headers()
            with WATCHDOG.guard(deadline) as guard:
                response = self._decision_pool().urlopen(
                    "GET",
                    self._liveness_path,
                    headers=headers,
                    timeout=urllib3.Timeout(connect=self.health_timeout, read=self.health_timeout),
                    retries=False,
                    redirect=False,
                    preload_content=False,
                    assert_same_host=False,
                )
                try:
                    declared = response.headers.get("Content-Length", "0")
                    small = declared.isdigit() and int(declared) <= _HEALTH_BODY_LIMIT
                    raw = response.read(_HEALTH_BODY_LIMIT + 1) if response.status == 200 and small else b""
                finally:
                    response.close()  # never reused: a body left unread must not reach the next request
                    response.release_conn()
                in_time = not guard.fired and time.monotonic() <= deadline
            return in_time and len(raw) <= _HEALTH_BODY_LIMIT and isinstance(_json.loads(raw), dict)
        except Exception:  # refused, reset, timed out, not JSON, token file unreadable: not healthy
            return False

    def _post(self, body: bytes, params: str, pod: PodRef | None) -> OpaResponse:
        timeout = self.settings.timeout
        url = self.decision_url + (f"?{params}" if params else "")
        started = time.monotonic()
        deadline = started + timeout
        attempt = 0
        cause: _Retryable | None = None
        while True:
            attempt += 1
            try:
                status, raw = self._post_once(url, body, deadline)
            except _Retryable as exc:
                # A timeout that only cut the last retry short says less than what failed before it.
                if cause is None or not exc.timed_out:
                    cause = exc
                wait = _BACKOFF[min(attempt - 1, len(_BACKOFF) - 1)]
                if time.monotonic() + wait >= deadline:
                    tries = f" (after {attempt} attempts within timeout = {timeout}s)" if attempt > 1 else ""
                    raise self._unavailable(cause.message + tries, cause.status, pod) from None
                time.sleep(wait)
                continue
            except OpaUnavailable as exc:
                raise self._unavailable(exc.reason, exc.status, pod) from None
            try:
                parsed = _json.loads(raw)
            except _json.DecodeErrors:
                snippet = raw[:80].decode("utf-8", "replace")
                raise self._unavailable(
                    f"OPA answered with a body that is not JSON: {snippet!r}", status, pod
                ) from None
            return OpaResponse(parsed, status, time.monotonic() - started, attempt)

    def _unavailable(self, message: str, status: int | None, pod: PodRef | None) -> OpaUnavailable:
        return OpaUnavailable(
            f"{message} ({self.decision_url})", status=status, pod=pod, decision_path=self.settings.decision_path
        )

    def _cannot_connect(self, exc: BaseException) -> str:
        """A failed connection; to a loopback url (the sidecar's) with nothing listening, most likely a pod
        whose template lacks the sidecar (a custom podTemplate or pod_template_file): say so."""
        message = f"cannot connect to OPA: {_root_cause(exc)}"
        if isinstance(exc, NewConnectionError) and _is_loopback(self.endpoint.host):
            message += (
                f"; no OPA sidecar answering at {self.settings.url}: does this pod's template include the "
                "sidecar? (docs/helm.md)"
            )
        return message

    def _post_once(self, url: str, body: bytes, deadline: float) -> tuple[int, bytes]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Retryable(f"OPA did not answer within timeout = {self.settings.timeout}s", timed_out=True)
        headers = self._request_headers()
        path = self._path + url[len(self.decision_url) :]
        # Socket timeouts bound each read, not the exchange: the watchdog enforces the deadline on it.
        # A read cut short can also look like a short, complete answer: ``fired`` decides, not the error.
        with WATCHDOG.guard(deadline) as guard:
            try:
                answer = self._exchange(path, body, headers, deadline=deadline, guard=guard)
            except (_Retryable, OpaUnavailable):
                if not guard.fired:
                    raise
            if not guard.fired:
                return answer
        raise _Retryable(f"OPA did not answer within timeout = {self.settings.timeout}s", timed_out=True)

    def _exchange(
        self, path: str, body: bytes, headers: dict[str, str], *, deadline: float, guard: Guard
    ) -> tuple[int, bytes]:
        remaining = max(deadline - time.monotonic(), 0.001)
        try:
            response = self._decision_pool().urlopen(
                "POST",
                path,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(connect=remaining, read=remaining),
                retries=False,
                redirect=False,
                preload_content=False,
                assert_same_host=False,
            )
        except SSLError as exc:
            raise OpaUnavailable(f"TLS certificate problem talking to OPA: {_root_cause(exc)}") from None
        except (NewConnectionError, ProtocolError, ConnectionError) as exc:  # before timeouts: urllib3's
            raise _Retryable(self._cannot_connect(exc)) from None  # NewConnectionError is one
        except _Urllib3Timeout:
            raise _Retryable(f"OPA did not answer within timeout = {self.settings.timeout}s", timed_out=True) from None
        except _Urllib3Error as exc:
            raise OpaUnavailable(f"request to OPA failed: {_root_cause(exc)}") from None
        try:
            raw = self._read_capped(response, deadline)
        except BaseException:
            response.close()  # unread bytes must not reach the next request on this connection
            raise
        finally:
            WATCHDOG.disarm(guard)  # before the connection can serve another request
            response.release_conn()
        status = response.status
        if status in RETRY_STATUSES and not _is_policy_error(raw):
            raise _Retryable(f"OPA answered HTTP {status}: {_error_text(raw)}", status)
        if status in (401, 403):
            raise OpaUnavailable(
                f"OPA refused the request with HTTP {status} "
                f"({'authentication' if status == 401 else 'authorization'} failed; check token/token_file "
                f"and OPA's system.authz policy): {_error_text(raw)}",
                status=status,
            )
        if status != 200:
            raise OpaUnavailable(f"OPA answered HTTP {status}: {_error_text(raw)}", status=status)
        return status, raw

    def _read_capped(self, response: urllib3.BaseHTTPResponse, deadline: float) -> bytes:
        limit = self.settings.max_response_bytes
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            # Not drained: reading a body this size is what the limit is there to avoid. The caller
            # closes the connection instead.
            raise OpaUnavailable(f"OPA's response of {declared} bytes exceeds max_response_bytes = {limit}")
        chunks = []
        size = 0
        try:
            if declared is not None and declared.isdigit() and not response.headers.get("Content-Encoding"):
                # OPA's usual answer: a plain body of known, acceptable size. One read (the watchdog
                # still bounds it) instead of the chunk loop, which costs more than the parse.
                raw = response.read()
                if time.monotonic() > deadline:
                    raise _Retryable(
                        f"OPA did not finish answering within timeout = {self.settings.timeout}s", timed_out=True
                    )
                return raw
            for chunk in response.stream(65536):
                size += len(chunk)
                if size > limit:
                    raise OpaUnavailable(f"OPA's response exceeds max_response_bytes = {limit}")
                if time.monotonic() > deadline:
                    raise _Retryable(
                        f"OPA did not finish answering within timeout = {self.settings.timeout}s", timed_out=True
                    )
                chunks.append(chunk)
        except _Urllib3Timeout:
            raise _Retryable(
                f"OPA did not finish answering within timeout = {self.settings.timeout}s", timed_out=True
            ) from None
        except (ProtocolError, _Urllib3Error) as exc:
            raise _Retryable(f"OPA's response broke off: {_root_cause(exc)}") from None
        return b"".join(chunks)


_CLIENTS: weakref.WeakSet[DecisionClient] = weakref.WeakSet()


def _reset_clients_in_child() -> None:
    for client in list(_CLIENTS):
        client._after_fork_in_child()


os.register_at_fork(after_in_child=_reset_clients_in_child)


class _Retryable(Exception):
    def __init__(self, message: str, status: int | None = None, *, timed_out: bool = False) -> None:
        self.message = message
        self.status = status
        self.timed_out = timed_out
        super().__init__(message)


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _root_cause(exc: BaseException) -> str:
    """The innermost useful message of a requests/urllib3 exception chain."""
    seen = exc
    while True:
        nxt = seen.__cause__ or seen.__context__
        if nxt is None or nxt is seen:
            break
        seen = nxt
    text = str(seen) or type(seen).__name__
    verify = getattr(seen, "verify_message", None)
    if isinstance(verify, str) and verify:
        # ssl.SSLCertVerificationError: its ``reason`` is only CERTIFICATE_VERIFY_FAILED; the verify
        # message says which problem it is (unknown issuer, host name mismatch, expired, ...).
        return f"certificate verify failed: {verify}"[:300]
    reason = getattr(seen, "reason", None)
    if reason is not None and str(reason):
        text = str(reason)
    return text[:300]


def _opa_error(raw: bytes) -> dict[str, Any] | None:
    try:
        parsed = _json.loads(raw)
    except _json.DecodeErrors:
        return None
    return parsed if isinstance(parsed, dict) and isinstance(parsed.get("code"), str) else None


def _is_policy_error(raw: bytes) -> bool:
    """A 500 caused by the policy itself (a conflict, a type error): retrying gives the same answer."""
    error = _opa_error(raw)
    details = error.get("errors") if error else None
    if not isinstance(details, list) or not details:
        return False
    codes = [d.get("code", "") for d in details if isinstance(d, dict)]
    return bool(codes) and all(isinstance(c, str) and c.startswith(("eval_", "rego_")) for c in codes)


def _error_text(raw: bytes) -> str:
    """OPA's error message (with the policy errors under it), else the start of the body (HTML too)."""
    error = _opa_error(raw)
    if error is not None:
        text = f"{error['code']}: {error.get('message', '')}"
        details = error.get("errors")
        if isinstance(details, list):
            for detail in details[:3]:
                if isinstance(detail, dict):
                    where = detail.get("location") or {}
                    place = f" at {where.get('file')}:{where.get('row')}" if isinstance(where, dict) and where else ""
                    text += f"; {detail.get('code')}: {detail.get('message')}{place}"
        return text[:600]
    return raw[:120].decode("utf-8", "replace").strip() or "<empty body>"
