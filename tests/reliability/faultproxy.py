"""A loopback HTTP fault proxy in front of a real OPA: forwards requests, or misbehaves on purpose.

Not a mock: in ``forward`` mode every request goes to the real OPA process and its real answer comes
back. A *plan* of faults is consumed one per request (then the default applies), so a test can say
"502, 502, then forward". Bounded: one thread per connection, every socket has a timeout, a hanging
connection is held at most ``hold`` seconds, and :meth:`FaultProxy.stop` closes everything.

Faults (``Fault.kind``):

``forward``    pass the request to OPA, its answer back (after ``delay`` seconds, if set)
``hang``       read the request, never answer (hold the connection open)
``status``     answer ``status`` with ``body`` (default: a JSON error like a proxy's) without asking OPA
``html``       answer ``status`` (default 502) with an nginx-like HTML error page
``truncated``  forward, but send only part of OPA's body, then close (Content-Length promises more)
``nonjson``    answer 200 with a body that is not JSON
``big``        answer 200 with a JSON body of ``size`` bytes; ``chunked`` hides the size from headers;
               ``declared`` announces a larger Content-Length than is sent (then the line stays open)
``trickle``    forward, but dribble the answer out one byte every ``delay`` seconds
``gzip``       answer 200 with ``Content-Encoding: gzip`` (unasked for) inflating to ``size`` bytes
``close``      read the request, then reset the connection without a byte
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.client
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

HTML_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.27.0</center>\r\n</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class Fault:
    kind: str = "forward"
    status: int = 200
    body: bytes | None = None
    delay: float = 0.0
    size: int = 0
    chunked: bool = False
    keep: int = 20  # bytes of the real body a ``truncated`` answer sends
    declared: int = 0  # ``big``: announce this Content-Length, send ``size`` bytes, then hold the line


@dataclass
class Seen:
    """One request the proxy received, and what it did with it."""

    method: str
    path: str
    headers: dict[str, str]
    fault: str
    peer: int = 0  # the client's port: which connection the request came on
    body: bytes = b""  # the first 4 KB of the request body
    at: float = field(default_factory=time.monotonic)


class FaultProxy:
    def __init__(self, upstream_port: int, *, default: Fault | None = None, hold: float = 30.0) -> None:
        self.upstream_port = upstream_port
        self.default = default or Fault()
        self.hold = hold
        self.seen: list[Seen] = []
        self._plan: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(256)
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"faultproxy-{self.port}", daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def plan(self, faults: Iterable[Fault]) -> FaultProxy:
        with self._lock:
            self._plan.extend(faults)
        return self

    def requests(self, path_prefix: str = "/v1/data") -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path.startswith(path_prefix)]

    # -- lifecycle ------------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()
        self._acceptor.join(timeout=5)
        for thread in list(self._threads):
            thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving --------------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5.0)
            with self._lock:
                self._conns.add(conn)
                self._threads = [t for t in self._threads if t.is_alive()]
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _next_fault(self) -> Fault:
        with self._lock:
            return self._plan.popleft() if self._plan else self.default

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        peer = int(conn.getpeername()[1])
        try:
            while not self._stopped.is_set():
                request = _read_request(reader)
                if request is None:
                    return
                method, path, headers, body = request
                fault = self._next_fault()
                with self._lock:
                    self.seen.append(Seen(method, path, headers, fault.kind, peer, body[:4096]))
                if not self._answer(conn, fault, method, path, headers, body):
                    return
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self._conns.discard(conn)
            with contextlib.suppress(OSError):
                reader.close()
            with contextlib.suppress(OSError):
                conn.close()

    def _answer(
        self, conn: socket.socket, fault: Fault, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> bool:
        """Send one answer; ``True`` when the connection may serve another request."""
        made_up = self._made_up_answer(conn, fault)
        if made_up is not None:
            return made_up
        return self._forwarded_answer(conn, fault, method, path, headers, body)

    def _made_up_answer(self, conn: socket.socket, fault: Fault) -> bool | None:
        """The faults answered without asking OPA; ``None`` for those that forward."""
        kind = fault.kind
        if kind == "hang":
            self._stopped.wait(self.hold)
            return False
        if kind == "close":  # reset: SO_LINGER 0 makes close() send RST instead of FIN
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if kind == "status":
            payload = fault.body if fault.body is not None else b'{"code": "bad_gateway", "message": "injected"}'
            conn.sendall(_response(fault.status, payload, "application/json"))
            return True
        if kind == "html":
            conn.sendall(_response(fault.status, HTML_PAGE, "text/html"))
            return True
        if kind == "nonjson":
            payload = fault.body if fault.body is not None else b"OK, evaluated your pod"
            conn.sendall(_response(200, payload, "text/plain"))
            return True
        if kind == "big":
            return self._big_answer(conn, fault)
        if kind == "gzip":
            conn.sendall(_head(200, "OK", [("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
                               len(_gzip_bomb(fault.size))) + _gzip_bomb(fault.size))
            return True
        return None

    def _big_answer(self, conn: socket.socket, fault: Fault) -> bool:
        pad = max(fault.size - 16, 0)
        payload = b'{"result":{},"x":"' + b"a" * pad + b'"}'
        if fault.declared:
            conn.sendall(_head(200, "OK", [("Content-Type", "application/json")], fault.declared) + payload)
            self._stopped.wait(self.hold)
            return False
        if fault.chunked:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            for start in range(0, len(payload), 65536):
                piece = payload[start : start + 65536]
                conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            conn.sendall(b"0\r\n\r\n")
        else:
            conn.sendall(_response(200, payload, "application/json"))
        return True

    def _forwarded_answer(
        self, conn: socket.socket, fault: Fault, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> bool:
        """forward, truncated, trickle: ask the real OPA."""
        kind = fault.kind
        if fault.delay and kind == "forward" and self._stopped.wait(fault.delay):
            return False
        status, reason, out_headers, out_body = self._forward(method, path, headers, body)
        if kind == "truncated":
            head = _head(status, reason, out_headers, len(out_body))
            conn.sendall(head + out_body[: fault.keep])
            return False
        raw = _head(status, reason, out_headers, len(out_body)) + out_body
        if kind == "trickle":
            for index in range(len(raw)):
                if self._stopped.wait(fault.delay):
                    return False
                conn.sendall(raw[index : index + 1])
            return True
        conn.sendall(raw)
        return True

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        try:
            skip = {"host", "connection", "content-length", "transfer-encoding"}
            upstream.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            upstream.putheader("Host", f"127.0.0.1:{self.upstream_port}")
            for key, value in headers.items():
                if key.lower() not in skip:
                    upstream.putheader(key, value)
            upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            response = upstream.getresponse()
            payload = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in skip]
            return response.status, response.reason, kept, payload
        except OSError:
            return 502, "Bad Gateway", [("Content-Type", "text/plain")], b"upstream OPA is unreachable"
        finally:
            upstream.close()


def _read_request(reader: BinaryIO) -> tuple[str, str, dict[str, str], bytes] | None:
    line = reader.readline(65537)
    if not line:
        return None
    method, path, _version = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while True:
        header = reader.readline(65537)
        if header in (b"\r\n", b"\n", b""):
            break
        key, _, value = header.decode("latin-1").partition(":")
        headers[key.strip()] = value.strip()
    length = int(next((v for k, v in headers.items() if k.lower() == "content-length"), "0"))
    body = reader.read(length) if length else b""
    return method, path, headers, body


@functools.lru_cache(maxsize=4)
def _gzip_bomb(size: int) -> bytes:
    """A gzip body of a JSON decision padded to ``size`` bytes, ~1000:1: one compressed MiB of padding
    repeated as concatenated gzip members (RFC 1952 allows several; decoders join them)."""
    mebibyte = gzip.compress(b"a" * (1 << 20), 9)
    return gzip.compress(b'{"result":{},"x":"') + mebibyte * (size >> 20) + gzip.compress(b'"}')


def _head(status: int, reason: str, headers: list[tuple[str, str]], length: int) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _response(status: int, body: bytes, content_type: str) -> bytes:
    reason = http.client.responses.get(status, "Unknown")
    return _head(status, reason, [("Content-Type", content_type)], len(body)) + body


class TrickleRelay:
    """A TCP relay to a real server that passes the server's bytes back one at a time, ``delay`` apart.

    Below HTTP, so it slows down a TLS handshake as much as an HTTP answer. Bounded like FaultProxy:
    every socket has a timeout and :meth:`stop` closes everything.
    """

    def __init__(self, upstream_port: int, delay: float = 0.05) -> None:
        self.upstream_port = upstream_port
        self.delay = delay
        self._stopped = threading.Event()
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            client.settimeout(5)
            with self._lock:
                self._socks += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, 0.0), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, self.delay), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, delay: float) -> None:
        try:
            while not self._stopped.is_set():
                data = source.recv(65536)
                if not data:
                    return
                if not delay:
                    sink.sendall(data)
                    continue
                for index in range(len(data)):
                    if self._stopped.wait(delay):
                        return
                    sink.sendall(data[index : index + 1])
        except OSError:
            return

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()
        self._thread.join(timeout=5)
