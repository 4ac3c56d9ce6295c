"""A real ``opa run --server`` on a free loopback port, for tests, the demo, the benchmark and the CLI.

Not used by the hook at run time (in production OPA is a sidecar); here so that every tool that needs
an OPA starts it the same way.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import requests

_REPO_BIN = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "opa"


class OpaNotFound(RuntimeError):
    pass


def opa_binary() -> str:
    """``$AOM_OPA_BIN``, else the project's ``.tools/bin/opa`` (scripts/install-tools), else ``opa`` on PATH."""
    explicit = os.environ.get("AOM_OPA_BIN")
    if explicit:
        return explicit
    if _REPO_BIN.exists():
        return str(_REPO_BIN)
    found = shutil.which("opa")
    if found:
        return found
    raise OpaNotFound("no OPA binary: run scripts/install-tools or set AOM_OPA_BIN")


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
    ) -> None:
        self.paths = [str(p) for p in paths]
        self.port = port or free_port()
        self.args = list(args)
        self.scheme = scheme
        self.startup_timeout = startup_timeout
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
            opa_binary(),
            "run",
            "--server",
            "--addr",
            f"127.0.0.1:{self.port}",
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
        verify = False  # a TLS server here uses a test CA; health is only a liveness probe
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"OPA exited with {self.process.returncode} on start:\n{self.logs()}")
            try:
                if requests.get(f"{self.url}/health", timeout=0.5, verify=verify).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"OPA did not become healthy within {self.startup_timeout}s:\n{self.logs()}")

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
