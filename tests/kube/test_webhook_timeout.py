"""A slow OPA is cut at the webhooks' ``timeoutSeconds``: with ``failurePolicy: Fail`` the API server refuses
the pod in a selected namespace, with ``Ignore`` it creates it unjudged (docs/helm.md, "Roll out the admission
webhook").

The real OPA serves policies/ over TLS behind a TLS relay that holds each review for longer than the
webhooks' one second before forwarding it (with no hold, the same path refuses a privileged pod: the relay
is transparent). The assertions are on the API server's answers, never on elapsed time.
"""

from __future__ import annotations

import contextlib
import copy
import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_opa_mutation import AUDIT_ANNOTATION
from airflow_opa_mutation.cli._local_opa import LocalOpa
from airflow_opa_mutation.cli.admission import PATHS

from ..conftest import POLICIES
from ..reliability.certs import TestCA
from . import webhooks
from .cluster import ControlPlane, free_ports
from .webhooks import PRIVILEGED, selected, unregister, wait_until_judged

MUTATE, VALIDATE = PATHS["mutate"], PATHS["validate"]
HOLD = 5.0  # seconds a held review waits: far past timeoutSeconds 1, bounded so no thread lingers
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "clean"},
    "spec": {"containers": [{"name": "c", "image": "busybox:1"}]},
}


@dataclass
class SlowOpa:
    """The relay's address, and whether it holds reviews (``slow``) or forwards them at once."""

    url: str
    ca_file: Path
    slow: threading.Event
    released: threading.Event
    held: list[str]  # the paths of the reviews the relay held


def _relay(upstream: str, ca_file: Path, served: Any, slow: threading.Event, released: threading.Event,
           held: list[str]) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if slow.is_set():
                held.append(self.path.partition("?")[0])
                released.wait(HOLD)  # the API server has given up long before
            answer = requests.post(upstream + self.path, data=body, verify=str(ca_file), timeout=30,
                                   headers={"Content-Type": "application/json"})
            with contextlib.suppress(OSError):  # a held review's caller has hung up
                self.send_response(answer.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

        def log_message(self, *args: Any) -> None:
            pass

    [port] = free_ports(1)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(served.cert, served.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


@pytest.fixture(scope="module")
def slow_opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlowOpa]:
    folder = tmp_path_factory.mktemp("slow-opa")
    ca = TestCA(folder)
    served = ca.issue("opa", ips=("127.0.0.1",))
    opa = LocalOpa([POLICIES], args=["--tls-cert-file", str(served.cert), "--tls-private-key-file", str(served.key)],
                   scheme="https").start()
    slow, released, held = threading.Event(), threading.Event(), []
    server = _relay(opa.url, ca.cert_path, served, slow, released, held)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield SlowOpa(f"https://127.0.0.1:{server.server_address[1]}", ca.cert_path, slow, released, held)
    finally:
        released.set()
        server.shutdown()
        server.server_close()
        opa.stop()


def register(kube: ControlPlane, url: str, ca_file: Path, name: str, failure_policy: str,
             timeout: int = 1) -> list[dict[str, Any]]:
    """The command's configurations for OPA at ``url``, named ``name``, selecting label ``aom-timeout=<name>``."""
    documents = webhooks.register(
        kube, url, ca_file, "--timeout-seconds", str(timeout), "--failure-policy", failure_policy,
        "--namespace-label", f"aom-timeout={name}", name=name,
    )
    for document in documents:
        [webhook] = document["webhooks"]
        assert (webhook["timeoutSeconds"], webhook["failurePolicy"]) == (timeout, failure_policy)
    return documents


def namespace(kube: ControlPlane, name: str, label: str | None) -> str:
    return selected(kube, name, labelled=label is not None, label=("aom-timeout", label or ""))


@pytest.fixture
def configured(kube_cluster: ControlPlane, slow_opa: SlowOpa, request: pytest.FixtureRequest) -> Iterator[str]:
    """Register configurations for the test's failure policy; yield a selected namespace, judged, relay slow."""
    policy = request.param
    name = f"aom-timeout-{policy.lower()}"
    register(kube_cluster, slow_opa.url, slow_opa.ca_file, name, policy)
    try:
        selected = namespace(kube_cluster, name, name)
        wait_until_judged(kube_cluster, selected)
        slow_opa.held.clear()
        slow_opa.slow.set()
        yield selected
    finally:
        slow_opa.slow.clear()
        unregister(kube_cluster, name)


def _timed_out(message: str, webhook: str) -> bool:
    return f'failed calling webhook "{webhook}"' in message and message.endswith("context deadline exceeded")


@pytest.mark.parametrize("configured", ["Fail"], indirect=True)
def test_with_fail_a_slow_opa_refuses_the_pod_in_a_selected_namespace_only(configured, kube_cluster, slow_opa):
    refused = kube_cluster.create_pod(configured, POD)
    assert slow_opa.held == [MUTATE], "OPA was reached; its answer came too late"
    assert refused.status == 500, refused
    assert _timed_out(refused.message, "mutate.pods.airflow-opa-mutation"), refused.message
    assert "?timeout=1s" in refused.message, "the API server cut the call at timeoutSeconds"
    assert kube_cluster.get_pod(configured, "clean").status == 404
    elsewhere = namespace(kube_cluster, "aom-timeout-unselected", None)
    created = kube_cluster.create_pod(elsewhere, POD)
    assert created.status == 201, created


@pytest.mark.parametrize("configured", ["Ignore"], indirect=True)
def test_with_ignore_a_slow_opa_lets_the_pod_through_unjudged(configured, kube_cluster, slow_opa):
    created = kube_cluster.create_pod(configured, POD)
    assert created.status == 201, created
    assert slow_opa.held == [MUTATE, VALIDATE], "both webhooks were called and cut"
    assert AUDIT_ANNOTATION not in (created.body["metadata"].get("annotations") or {}), "never judged"
    # the price of Ignore: what the policies refuse with a fast OPA is created when OPA is slow
    privileged = kube_cluster.create_pod(configured, copy.deepcopy(PRIVILEGED))
    assert privileged.status == 201, privileged
    stored = kube_cluster.get_pod(configured, PRIVILEGED["metadata"]["name"])
    assert json.dumps(stored.body["spec"]["containers"][0]["securityContext"]) == '{"privileged": true}'
