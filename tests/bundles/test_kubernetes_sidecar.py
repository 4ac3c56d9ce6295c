"""deploy/kubernetes/opa-sidecar.yaml run by a real OPA: the container's exact args, its ConfigMaps' files
where the projected volume puts them, the env ConfigMap, a writable directory for the emptyDir.

Only what a container gives for free is mapped: container paths to a temporary folder holding the
ConfigMaps' data, the two listen ports to free loopback ports, the env ConfigMap's service URLs to the
loopback bundle server and collector, and (for test speed) shorter polling and upload delays. Also here:
the OPA facts the deployment docs rely on (an unset ${VAR}, an unwritable persistence directory, a Rego
file loaded from disk under the bundle's root, the mask beside ``--bundle``), each run against real OPA.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from airflow_opa_mutation import InvalidDecision
from airflow_opa_mutation.cli._local_opa import LocalOpa, free_port, opa_binary

from ..conftest import REPO, worker_pod
from .conftest import BUNDLE, MAX_DELAY, MIN_DELAY, RESOURCE, Keys, opa_status, wait_active, wait_until

K8S = REPO / "deploy" / "kubernetes"
#: The credential issue 17 reproduced in OPA's console output with the old docs' sidecar.
LEAK = "postgres://u:hunter2@db"


def _load(name: str) -> Any:
    return yaml.safe_load((K8S / name).read_text())


class Sidecar(LocalOpa):
    """An OPA started with exactly the given command line (no flags of LocalOpa's own)."""

    def __init__(self, args: list[str], *, port: int, diag_port: int, persistence: Path) -> None:
        super().__init__([], port=port)
        self.command = args
        self.persistence = persistence
        self.diag_url = f"http://127.0.0.1:{diag_port}"

    def start(self, *, wait: bool = True) -> Sidecar:
        self.process = subprocess.Popen([opa_binary(), *self.command], stdout=self._log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_healthy()
        return self

    def probe(self, path: str = "/health?bundles=true") -> int:
        """What the kubelet's httpGet probe sees on the diagnostic port."""
        return requests.get(self.diag_url + path, timeout=2).status_code


@pytest.fixture
def run_k8s_sidecar(bundle_server, collector, keys: Keys, tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Sidecar]]:
    """Start deploy/kubernetes/opa-sidecar.yaml's command on this machine (see the module docstring)."""
    started: list[Sidecar] = []

    def start(*, env: dict[str, str] | None = None, persistence: Path | None = None,
              extra_paths: list[Path] = ()) -> Sidecar:  # type: ignore[assignment]
        container = _load("opa-sidecar.yaml")
        configmap = _load("opa-configmap.yaml")
        root = tmp_path / f"sidecar-{len(started)}"
        etc = root / "etc-opa"  # the projected volume "opa-config", mounted at /etc/opa
        (etc / "keys").mkdir(parents=True)
        for key, text in configmap["data"].items():
            (etc / key).write_text(text)
        (etc / "keys" / "airflow_bundle.pub.pem").write_bytes(keys.public.read_bytes())
        persist = persistence or root / "var-lib-opa"  # the emptyDir "opa-persistence"
        port, diag_port = free_port(), free_port()

        variables = yaml.safe_load((K8S / "opa-env-configmap.yaml").read_text())["data"]
        variables |= {"AOM_BUNDLE_SERVICE_URL": bundle_server.url, "AOM_DECISION_LOG_SERVICE_URL": collector.url}
        for name in ("AOM_BUNDLE_SERVICE_URL", "AOM_DECISION_LOG_SERVICE_URL", "AOM_DEPLOYMENT"):
            monkeypatch.delenv(name, raising=False)
        for name, value in (variables if env is None else env).items():
            monkeypatch.setenv(name, value)

        listen = {"--addr=": f"--addr=127.0.0.1:{port}", "--diagnostic-addr=": f"--diagnostic-addr=127.0.0.1:{diag_port}"}
        args = [next((v for k, v in listen.items() if arg.startswith(k)), arg.replace("/etc/opa", str(etc)))
                for arg in container["args"]]
        mask = args.pop()  # the positional path stays last
        args += [
            f"--set=persistence_directory={persist}",
            f"--set=bundles.{BUNDLE}.polling.min_delay_seconds={MIN_DELAY}",
            f"--set=bundles.{BUNDLE}.polling.max_delay_seconds={MAX_DELAY}",
            "--set=decision_logs.reporting.min_delay_seconds=1",
            "--set=decision_logs.reporting.max_delay_seconds=1",
            *map(str, extra_paths),
            mask,
        ]
        sidecar = Sidecar(args, port=port, diag_port=diag_port, persistence=persist).start()
        started.append(sidecar)
        return sidecar

    yield start
    for sidecar in started:
        sidecar.stop()


def _secret_pod(name: str) -> Any:
    from kubernetes import client as k8s

    pod = worker_pod(name)
    pod.spec.containers[0].env.append(k8s.V1EnvVar(name="AIRFLOW_CONN_METADATA", value=LEAK))
    return pod


def test_the_sidecar_container_runs_on_a_real_opa_masked_and_gated_by_its_probes(
    run_k8s_sidecar, bundle_server, make_bundle, make_hook, collector
):
    sidecar = run_k8s_sidecar()
    assert sidecar.probe("/health") == 200
    assert sidecar.probe() == 500, "startup/readiness probe: no bundle activated yet"
    with pytest.raises(InvalidDecision, match="undefined"):
        make_hook(sidecar)(_secret_pod("before-bundle"))

    bundle_server.publish(RESOURCE, make_bundle("rev-k8s"))
    wait_active(sidecar, "rev-k8s")
    assert sidecar.probe() == 200
    assert sidecar.probe("/metrics") == 200, "Prometheus's scrape, anonymous (deploy/monitoring/podmonitor.yaml)"

    hook = make_hook(sidecar, require_bundles=True)
    pod = _secret_pod("after-bundle")
    hook(pod)
    assert pod.spec.containers[0].security_context.allow_privilege_escalation is False, "the bundle's policies ran"
    decision_ids = {hook.evaluate(_secret_pod("evaluated")).decision.decision_id}

    events = collector.wait_for(lambda c: [e for e in c.events if e.get("decision_id") in decision_ids])
    assert events[0]["labels"]["deployment"] == _load("opa-env-configmap.yaml")["data"]["AOM_DEPLOYMENT"]
    assert "/input/pod/spec/containers/0/env/1/value" in events[0]["erased"]
    collector.wait_for(lambda c: len(c.events) >= 3)  # the undefined decision before the bundle, too
    sidecar.stop()  # flushes the decision-log buffer
    assert LEAK.encode() not in b"".join(collector.raw_logs)
    assert "hunter2" not in sidecar.logs(), "nothing of the env value in OPA's console output"
    # persist: true wrote the activated bundle where the container mounts its emptyDir.
    assert list(sidecar.persistence.rglob("*.tar.gz")), list(sidecar.persistence.rglob("*"))


def test_an_unset_variable_is_kept_literally_and_no_bundle_is_ever_activated(run_k8s_sidecar, bundle_server,
                                                                              make_bundle):
    """deploy/opa/config.yaml's ${AOM_BUNDLE_SERVICE_URL} without the env ConfigMap: not "", but the text."""
    bundle_server.publish(RESOURCE, make_bundle("rev-k8s"))
    sidecar = run_k8s_sidecar(env={"AOM_DECISION_LOG_SERVICE_URL": "http://127.0.0.1:9", "AOM_DEPLOYMENT": "x"})

    def failed() -> str | None:
        info = opa_status(sidecar).get("bundles", {}).get(BUNDLE, {})
        return info.get("message") if info.get("code") == "bundle_error" else None

    message = wait_until(failed, 10, "a bundle_error")
    assert "$%7BAOM_BUNDLE_SERVICE_URL%7D/bundles/airflow/bundle.tar.gz" in message, message
    assert opa_status(sidecar)["labels"]["deployment"] == "x"
    assert sidecar.probe() == 500
    assert bundle_server.served_since(0) == 0


def test_an_unwritable_persistence_directory_means_no_bundle_is_ever_activated(run_k8s_sidecar, bundle_server,
                                                                                make_bundle, tmp_path):
    """Why the container spec mounts an emptyDir at persistence_directory (readOnlyRootFilesystem)."""
    blocker = tmp_path / "read-only"
    blocker.write_text("a file, so nothing can be created below it (even by root)")
    bundle_server.publish(RESOURCE, make_bundle("rev-k8s"))
    sidecar = run_k8s_sidecar(persistence=blocker / "opa")
    wait_until(lambda: bundle_server.served_since(0) >= 2, 15, "two downloads of the bundle")
    assert sidecar.probe() == 500
    assert opa_status(sidecar)["bundles"][BUNDLE].get("active_revision") in (None, "")


def test_a_disk_rego_under_the_bundle_root_is_served_until_the_bundle_activates_then_erased(
    run_k8s_sidecar, bundle_server, make_bundle, tmp_path
):
    """The bundle's roots do not keep a file from the sidecar's disk out of airflow/pod at first."""
    extra = tmp_path / "extra.rego"
    extra.write_text('package airflow.pod.extra\n\nsource := "disk"\n')
    sidecar = run_k8s_sidecar(extra_paths=[extra])

    def read() -> Any:
        return requests.get(f"{sidecar.url}/v1/data/airflow/pod/extra/source", timeout=2).json().get("result")

    assert read() == "disk"
    bundle_server.publish(RESOURCE, make_bundle("rev-k8s"))
    wait_active(sidecar, "rev-k8s")
    assert read() is None, "erased when the bundle activated"


def test_console_decision_logs_need_the_mask_and_the_mask_does_not_load_beside_bundle(make_bundle, make_hook,
                                                                                      tmp_path):
    """The old docs' sidecar (`--bundle` tarball, console decision logs, no mask) printed env values; adding
    mask.rego beside `--bundle` makes OPA refuse to start. The shipped container uses neither."""
    tarball = make_bundle("rev-console", unsigned=True)  # the old docs built it with plain `opa build`
    mask = REPO / "deploy" / "opa" / "mask.rego"
    console = ["--set", "decision_logs.console=true", "--log-level", "info"]

    refused = subprocess.run(
        [opa_binary(), "run", "--server", "--addr", f"127.0.0.1:{free_port()}", "--bundle", str(tarball), str(mask)],
        check=False, capture_output=True, text=True, timeout=30,
    )
    assert refused.returncode != 0
    assert "gzip: invalid header" in refused.stdout + refused.stderr

    def logged(paths: list[Path], flags: list[str]) -> str:
        opa = LocalOpa(paths, args=console + flags).start()
        try:
            make_hook(opa).evaluate(_secret_pod("console"))
        finally:
            opa.stop()
        return opa.logs()

    unmasked = logged([tarball], ["--bundle"])
    assert LEAK in unmasked, "console decision logs without a mask print the pod's env values"
    masked = logged([tarball, mask], [])  # without --bundle the tarball still loads as a bundle
    assert '"erased"' in masked and "hunter2" not in masked
