"""Real HTTP servers on loopback for the bundle tests: a bundle server and a decision-log collector.

Both are stdlib ``http.server`` threads (never a mock of OPA: OPA itself is a real process talking to
them). The bundle server serves files from a directory with ETag / If-None-Match, the way nginx does,
and counts what it served; the collector receives OPA's gzip-compressed JSON batches on ``POST /logs``
and status reports on ``POST /status``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class _Server:
    handler: type[BaseHTTPRequestHandler]

    def __init__(self, host: str = "127.0.0.1", bind: str | None = None, tls: tuple[Path, Path] | None = None) -> None:
        # ``host`` is the address clients use; ``bind`` where to listen when that differs (a container
        # reaching the host through its bridge's gateway, which exists only while a container runs).
        # ``tls``: (certificate, key) to serve HTTPS with.
        self.host = host
        self.scheme = "https" if tls else "http"
        self.httpd = ThreadingHTTPServer((bind or host, 0), self.handler)
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.httpd.serve_forever, name=type(self).__name__, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _BundleHandler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        server: BundleServer = self.server.owner  # type: ignore[attr-defined]
        path = server.root / self.path.split("?", 1)[0].lstrip("/")
        try:
            body = path.read_bytes()
        except OSError:
            server.count(self.path, 404)
            self.send_error(404)
            return
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        if self.headers.get("If-None-Match") == etag:
            server.count(self.path, 304)
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        server.count(self.path, 200)
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.end_headers()
        self.wfile.write(body)


class BundleServer(_Server):
    """Serves ``root``; :meth:`publish` replaces a file atomically (a reader never sees half a bundle)."""

    handler = _BundleHandler

    def __init__(self, root: Path, host: str = "127.0.0.1", bind: str | None = None,
                 tls: tuple[Path, Path] | None = None) -> None:
        self.root = root
        self.requests: list[tuple[float, str, int]] = []
        super().__init__(host, bind, tls)

    def count(self, path: str, status: int) -> None:
        with self.lock:
            self.requests.append((time.monotonic(), path, status))

    def publish(self, resource: str, bundle: Path | bytes) -> float:
        """Put ``bundle`` at ``resource``; returns the monotonic time it became visible."""
        target = self.root / resource
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(bundle if isinstance(bundle, bytes) else bundle.read_bytes())
        os.replace(tmp, target)
        return time.monotonic()

    def served_since(self, since: float, status: int = 200) -> int:
        with self.lock:
            return sum(1 for when, _, code in self.requests if when >= since and code == status)


class _CollectorHandler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        collector: Collector = self.server.owner  # type: ignore[attr-defined]
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding") == "gzip" or raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        collector.receive(self.path.split("?", 1)[0], raw)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


class Collector(_Server):
    """OPA's decision-log and status service: ``POST /logs`` (gzip JSON arrays), ``POST /status``."""

    handler = _CollectorHandler

    def __init__(self, host: str = "127.0.0.1", bind: str | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        self.raw_logs: list[bytes] = []
        super().__init__(host, bind)

    def receive(self, path: str, raw: bytes) -> None:
        body = json.loads(raw)
        with self.lock:
            if path.startswith("/logs"):
                self.raw_logs.append(raw)
                self.events.extend(body)
            elif path.startswith("/status"):
                self.statuses.append(body)

    def wait_for(self, what: Callable[[Collector], Any], timeout: float = 15.0) -> Any:
        """Poll until ``what(self)`` is truthy; return its value (``AssertionError`` on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                value = what(self)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"collector: condition not met within {timeout}s")
            time.sleep(0.05)
