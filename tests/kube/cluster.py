"""A throwaway Kubernetes control plane: etcd and a real kube-apiserver on free loopback ports.

What the hook produces is meant for the API server, so the tests send it to one: API validation,
defaulting and Pod Security admission run exactly as in a cluster. No controller-manager, scheduler or
kubelet runs: pods stay Pending, which is enough, since what we test is what the API server accepts and
stores. Without a controller-manager nobody creates ServiceAccounts, so ``namespace()`` creates
``default`` and ``create_pod()`` the one a pod names (the ServiceAccount admission plugin requires it).

The binaries are built by scripts/install-tools (pinned in scripts/versions.env); ``$AOM_KUBE_APISERVER_BIN``
and ``$AOM_ETCD_BIN`` override the project's .tools/bin. A missing binary raises: tests fail, never skip.

Requests go through plain ``requests`` against the REST API, not the ``kubernetes`` client: the suite
runs on both client generations (36's classic models, 37's pydantic ones), whose typed results differ
and whose deserialisation drops fields it does not know, while what we judge is the JSON the server
stores and its exact status code, message and warnings, which the REST API hands back unchanged.

Also runnable by hand: ``scripts/kube-up`` (``python tests/kube/cluster.py``) starts one in the
foreground and prints its kubeconfig; Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import requests
import urllib3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

REPO = Path(__file__).resolve().parents[2]
ADMIN_USER = "aom-admin"
SERVICE_CIDR = "10.96.0.0/24"
ISSUER = "https://kubernetes.default.svc.cluster.local"


class KubeToolsMissing(RuntimeError):
    pass


class ControlPlaneError(RuntimeError):
    pass


def binary(name: str, env: str) -> Path:
    """``$env``, else the project's .tools/bin/<name> (scripts/install-tools); raises when absent."""
    path = Path(os.environ.get(env) or REPO / ".tools" / "bin" / name)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise KubeToolsMissing(f"no {name} binary at {path}: run scripts/install-tools (or set ${env})")
    return path


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together so they differ; a small race remains)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _warning_text(header: str) -> str:
    """The text of a ``Warning: 299 - "text"`` header (RFC 7234 quoted-string, escapes undone)."""
    match = re.fullmatch(r'\d{3} \S+ "(.*)"', header.strip())
    return re.sub(r"\\(.)", r"\1", match.group(1)) if match else header


@dataclass
class ApiResult:
    """One API answer: the status code, the JSON body (the object, or a Status) and any warnings."""

    status: int
    body: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        return str(self.body.get("message", ""))

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.message or json.dumps(self.body)[:300]}"

    __repr__ = __str__  # what an assertion shows: the status and the server's whole message


class ControlPlane:
    """etcd + kube-apiserver in a temporary folder; ``start()`` returns once ``/readyz`` says ok.

    The API server runs with RBAC, a static admin token (group system:masters), a service-account key
    pair, serving certificates it generates itself (``--cert-dir``), PodSecurity admission, and
    ``--allow-privileged=true`` (the default refuses privileged pods at validation, before admission
    could show what the hook did), and the ``ImageVolume`` feature gate (beta but off by default in 1.34:
    off, the server silently drops ``image`` volumes and their mounts, so the library's image-volume
    samples would not be stored as the hook sent them).
    """

    def __init__(self, workdir: Path | None = None, *, startup_timeout: float = 90.0) -> None:
        self.apiserver_bin = binary("kube-apiserver", "AOM_KUBE_APISERVER_BIN")
        self.etcd_bin = binary("etcd", "AOM_ETCD_BIN")
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="aom-kube-"))
        self.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.startup_timeout = startup_timeout
        self.token = secrets.token_hex(24)
        self.etcd_port, self.peer_port, self.port = free_ports(3)
        self.start_seconds: float | None = None
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._session = requests.Session()
        self._session.trust_env = False  # never a proxy for loopback
        self._session.headers["Authorization"] = f"Bearer {self.token}"

    # --- life cycle ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        # --cert-dir: the server writes its self-signed certificate followed by the CA that signed it.
        return self.workdir / "certs" / "apiserver.crt"

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def start(self) -> ControlPlane:
        began = time.monotonic()
        try:
            self._start_etcd()
            self._write_credentials()
            self._start_apiserver()
            self._write_kubeconfig()
        except BaseException:
            self.stop(keep=True)
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self, *, keep: bool = False) -> None:
        """Stop both processes; remove the folder unless ``keep`` (logs kept for a failed run)."""
        for name in ("kube-apiserver", "etcd"):
            process = self.processes.pop(name, None)
            if process and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self._session.close()
        if not keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop(keep=exc_type is not None)

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.log(name)
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        with self.log(name).open("ab") as log:
            # Own session: a Ctrl-C reaches only us, and we stop the API server before etcd.
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.processes[name] = process
        return process

    def _wait(self, name: str, ready: Any) -> None:
        """Poll ``ready()`` until true; fail with the log's tail when the process dies or time runs out."""
        deadline = time.monotonic() + self.startup_timeout
        process = self.processes[name]
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ControlPlaneError(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")
            try:
                if ready():
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise ControlPlaneError(f"{name} not ready after {self.startup_timeout:.0f} s:\n{self.log_tail(name)}")

    def _start_etcd(self) -> None:
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        self._spawn(
            "etcd",
            [
                str(self.etcd_bin),
                "--name=aom",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=aom={peer}",
                "--log-level=warn",
                "--unsafe-no-fsync",  # a throwaway store: durability only costs time here
            ],
        )
        self._wait("etcd", lambda: requests.get(f"{client}/health", timeout=2).json().get("health") == "true")

    def _write_credentials(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (self.workdir / "sa.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        (self.workdir / "sa.pub").write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        # token,user,uid,"group,..." : the admin is in system:masters, which RBAC lets do anything.
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f'{self.token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
        tokens.chmod(0o600)

    def _start_apiserver(self) -> None:
        self._spawn(
            "kube-apiserver",
            [
                str(self.apiserver_bin),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--cert-dir={self.workdir / 'certs'}",
                f"--service-account-key-file={self.workdir / 'sa.pub'}",
                f"--service-account-signing-key-file={self.workdir / 'sa.key'}",
                f"--service-account-issuer={ISSUER}",
                f"--token-auth-file={self.workdir / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                "--enable-admission-plugins=PodSecurity",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--feature-gates=ImageVolume=true",
                "--profiling=false",
            ],
        )

        def ready() -> bool:
            if not self.ca_file.exists():
                return False
            return requests.get(
                f"{self.url}/readyz", headers=self._session.headers, verify=str(self.ca_file), timeout=5
            ).ok

        self._wait("kube-apiserver", ready)
        self._session.verify = str(self.ca_file)

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "aom", "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)}}],
            "users": [{"name": ADMIN_USER, "user": {"token": self.token}}],
            "contexts": [{"name": "aom", "context": {"cluster": "aom", "user": ADMIN_USER}}],
            "current-context": "aom",
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2) + "\n")  # JSON is YAML: any client reads it
        self.kubeconfig.chmod(0o600)

    # --- API helpers --------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, **params: str) -> ApiResult:
        response = self._session.request(method, self.url + path, json=body, params=params or None, timeout=30)
        try:
            document = response.json()
        except ValueError:
            document = {"message": response.text}
        warnings = [_warning_text(w) for w in response.raw.headers.getlist("Warning")] if response.raw else []
        return ApiResult(response.status_code, document, warnings)

    def namespace(self, name: str, *, enforce: str | None = None, warn: str | None = None) -> ApiResult:
        """Create namespace ``name`` with Pod Security labels (level ``enforce``, and ``warn``) at
        version ``latest``, and its ``default`` ServiceAccount. An existing namespace is returned as is."""
        labels: dict[str, str] = {}
        for mode, level in (("enforce", enforce), ("warn", warn)):
            if level:
                labels[f"pod-security.kubernetes.io/{mode}"] = level
                labels[f"pod-security.kubernetes.io/{mode}-version"] = "latest"
        result = self.request(
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}},
        )
        if result.status == 409:
            result = self.request("GET", f"/api/v1/namespaces/{name}")
        if not result.ok:
            raise ControlPlaneError(f"namespace {name}: {result}")
        self.service_account(name, "default")
        return result

    def service_account(self, namespace: str, name: str) -> None:
        body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}
        result = self.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts", body)
        if not result.ok and result.status != 409:
            raise ControlPlaneError(f"serviceaccount {namespace}/{name}: {result}")

    def create_pod(self, namespace: str, pod: dict[str, Any], *, dry_run: bool = False) -> ApiResult:
        """POST the pod (JSON, as Kubernetes spells it) into ``namespace``: the stored object, or the
        API's error (status code and message). ``dry_run``: ``dryRun=All``, validated and admitted but
        never stored. The ServiceAccount the pod names is created first (no controller does it here)."""
        account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        self.service_account(namespace, account)
        params = {"dryRun": "All"} if dry_run else {}
        return self.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod, **params)

    def get_pod(self, namespace: str, name: str) -> ApiResult:
        return self.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")

    def list_pods(self, namespace: str) -> list[dict[str, Any]]:
        result = self.request("GET", f"/api/v1/namespaces/{namespace}/pods")
        if not result.ok:
            raise ControlPlaneError(f"list pods in {namespace}: {result}")
        return list(result.body.get("items") or [])


def main(argv: list[str] | None = None) -> int:
    """scripts/kube-up: a control plane in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="kube-up", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, help="working folder (default: a new temporary one, removed at exit)")
    args = parser.parse_args(argv)
    urllib3.disable_warnings()
    plane = ControlPlane(args.dir)
    try:
        plane.start()
    except ControlPlaneError as exc:
        print(f"kube-up: {exc}\n(logs kept in {plane.workdir})", file=sys.stderr)
        return 1
    plane.namespace("airflow", enforce="baseline", warn="restricted")
    print(f"kube-apiserver ready at {plane.url} in {plane.start_seconds:.1f} s (etcd + kube-apiserver)")
    print(f"kubeconfig: {plane.kubeconfig}")
    print(f"  export KUBECONFIG={plane.kubeconfig}")
    print("namespace 'airflow': pod-security enforce=baseline, warn=restricted (logs in the same folder)")
    print("Ctrl-C stops it and removes the folder" + (" (kept: --dir)" if args.dir else ""))
    stop = False

    def interrupted(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    while not stop and all(p.poll() is None for p in plane.processes.values()):
        time.sleep(0.5)
    died = [] if stop else [name for name, p in plane.processes.items() if p.poll() is not None]
    for name in died:
        print(f"kube-up: {name} exited:\n{plane.log_tail(name)}", file=sys.stderr)
    plane.stop(keep=bool(args.dir) or bool(died))
    print("kube-up: stopped" + (f"; logs in {plane.workdir}" if died or args.dir else ""))
    return 1 if died else 0


if __name__ == "__main__":
    sys.exit(main())
