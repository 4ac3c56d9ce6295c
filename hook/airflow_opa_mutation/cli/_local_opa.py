"""A real ``opa run --server`` on a free loopback port: for ``--policies``, and for the project's tests,
demo and benchmark, so that every tool starts OPA the same way. Never used by the hook (in production
OPA is a sidecar).

The binary is the one named by the caller (``--opa``), else ``$AOM_OPA_BIN``, else ``opa`` on PATH; in a
clone of the repository, ``scripts/install-tools`` builds the pinned version and the project's scripts
point ``AOM_OPA_BIN`` at it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType


class OpaNotFound(RuntimeError):
    pass


def opa_binary(explicit: str | None = None) -> str:
    """``explicit`` (an option), else ``$AOM_OPA_BIN``, else ``opa`` on PATH."""
    chosen = explicit or os.environ.get("AOM_OPA_BIN")
    if chosen:
        return chosen
    found = shutil.which("opa")
    if found:
        return found
    raise OpaNotFound(
        "no OPA binary: put opa on PATH or set AOM_OPA_BIN (in a clone, scripts/install-tools builds the pinned one)"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalOpa:
    """One OPA server process. ``start()`` waits until ``/health`` answers 200."""

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        port: int | None = None,
        args: Sequence[str] = (),
        scheme: str = "http",
        startup_timeout: float = 30.0,
        opa: str | None = None,
    ) -> None:
        self.paths = [str(p) for p in paths]
        self.port = port or free_port()
        self.args = list(args)
        self.scheme = scheme
        self.startup_timeout = startup_timeout
        self.opa = opa
        self.process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="opa-", suffix=".log", delete=False)  # noqa: SIM115

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> str:
        return self._log.name

    def logs(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def start(self, *, wait: bool = True) -> LocalOpa:
        command = [
            opa_binary(self.opa),
            "run",
            "--server",
            "--addr",
            f"127.0.0.1:{self.port}",
            "--skip-version-check",  # no call to OPA's version service at each start
            "--log-level",
            "error",
            *self.args,
            *self.paths,
        ]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"OPA exited with {self.process.returncode} on start:\n{self.logs()}")
            if self._alive():
                return
            time.sleep(0.05)
        raise RuntimeError(f"OPA did not become healthy within {self.startup_timeout}s:\n{self.logs()}")

    def _alive(self) -> bool:
        """Whether the process we started answers ``GET /health`` with 200: a liveness probe of a child
        process, not a conversation with OPA's API (a TLS server here has a test CA: not verified)."""
        if self.scheme == "https":
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=0.5, context=context
            )
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=0.5)
        try:
            conn.request("GET", "/health")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: the way a crashed sidecar disappears, without closing its connections politely."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def restart(self) -> LocalOpa:
        self.stop()
        return self.start()

    def __enter__(self) -> LocalOpa:
        return self.start() if self.process is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        self._log.close()
