"""deploy/kubernetes/opa-sidecar.yaml run by a real OPA: the container's exact args, its ConfigMaps' files
where the projected volume puts them, the env ConfigMap, a writable directory for the emptyDir.

Only what a container gives for free is mapped: container paths to a temporary folder holding the
ConfigMaps' data, the two listen ports to free loopback ports, the env ConfigMap's service URLs to the
loopback bundle server and collector, and (for test speed) shorter polling and upload delays. Also here:
the OPA facts the deployment docs rely on (an unset ${VAR}, an unwritable persistence directory, a Rego
file loaded from disk under the bundle's root, the mask beside ``--bundle``), each run against real OPA.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from airflow_opa_mutation import InvalidDecision
from airflow_opa_mutation.cli._bundle_builder import trusted_keys
from airflow_opa_mutation.cli._local_opa import LocalOpa, free_port, opa_binary

from ..conftest import REPO, worker_pod
from .conftest import BUNDLE, MAX_DELAY, MIN_DELAY, RESOURCE, Keys, wait_active, wait_until

K8S = REPO / "deploy" / "kubernetes"
#: The credential issue 17 reproduced in OPA's console output with the old docs' sidecar.
LEAK = "postgres://u:hunter2@db"
#: The deployment opa-env-configmap.yaml names: the scope the bundles for these sidecars are signed for.
SCOPE = yaml.safe_load((K8S / "opa-env-configmap.yaml").read_text())["data"]["AOM_DEPLOYMENT"]


def _load(name: str) -> Any:
    return yaml.safe_load((K8S / name).read_text())


class Sidecar(LocalOpa):
    """An OPA started with exactly the given command line (no flags of LocalOpa's own)."""

    def __init__(self, args: list[str], *, port: int, diag_port: int, persistence: Path, etc: Path,
                 scheme: str = "http") -> None:
        super().__init__([], port=port, scheme=scheme)
        self.command = args
        self.persistence = persistence
        self.etc = etc  # where /etc/opa is: the ConfigMaps' files
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
              extra_paths: list[Path] = (), container: dict[str, Any] | None = None,  # type: ignore[assignment]
              tls: Path | None = None) -> Sidecar:
        """``container``: opa-sidecar.yaml unless given (admission-opa.yaml's); ``tls``: the folder holding
        tls.crt and tls.key, where the container mounts /etc/opa-tls."""
        container = container or _load("opa-sidecar.yaml")
        configmap = _load("opa-configmap.yaml")
        root = tmp_path / f"sidecar-{len(started)}"
        etc = root / "etc-opa"  # the projected volume "opa-config", mounted at /etc/opa
        etc.mkdir(parents=True)
        for key, text in configmap["data"].items():
            (etc / key).write_text(text)
        persist = persistence or root / "var-lib-opa"  # the emptyDir "opa-persistence"
        port, diag_port = free_port(), free_port()

        variables = yaml.safe_load((K8S / "opa-env-configmap.yaml").read_text())["data"]
        variables |= {"AOM_BUNDLE_SERVICE_URL": bundle_server.url, "AOM_DECISION_LOG_SERVICE_URL": collector.url}
        # ConfigMap airflow-opa-bundle-keys, as `bundle keys` writes it (the keys fixture: airflow_bundle).
        keys_env = {"AOM_BUNDLE_KEYS": json.dumps(trusted_keys([keys.public]))}
        for name in ("AOM_BUNDLE_SERVICE_URL", "AOM_DECISION_LOG_SERVICE_URL", "AOM_DEPLOYMENT", "AOM_BUNDLE_KEYS"):
            monkeypatch.delenv(name, raising=False)
        for name, value in ({**variables, **keys_env} if env is None else {**keys_env, **env}).items():
            monkeypatch.setenv(name, value)

        listen = {"--addr=": port, "--diagnostic-addr=": diag_port}  # the scheme given (http://, https://) stays

        def mapped(arg: str) -> str:
            for flag, free in listen.items():
                if arg.startswith(flag):
                    return re.sub(r"[^/=]+:\d+$", f"127.0.0.1:{free}", arg)
            if tls is not None:
                arg = arg.replace("/etc/opa-tls", str(tls))
            return arg.replace("/etc/opa", str(etc))

        args = [mapped(arg) for arg in container["args"]]
        assert args[0] == "run" and all(a.startswith("--") for a in args[1:] if "=" in a)
        paths = [a for a in args[1:] if not a.startswith("-")]  # the files loaded from disk stay last
        args = [a for a in args if a == "run" or a.startswith("-")]
        args += [
            f"--set=persistence_directory={persist}",
            f"--set=bundles.{BUNDLE}.polling.min_delay_seconds={MIN_DELAY}",
            f"--set=bundles.{BUNDLE}.polling.max_delay_seconds={MAX_DELAY}",
            "--set=decision_logs.reporting.min_delay_seconds=1",
            "--set=decision_logs.reporting.max_delay_seconds=1",
            *map(str, extra_paths),
            *paths,
        ]
        scheme = "https" if any(a.startswith("--tls-cert-file") for a in args) else "http"
        sidecar = Sidecar(args, port=port, diag_port=diag_port, persistence=persist, etc=etc, scheme=scheme).start()
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

    bundle_server.publish(RESOURCE, make_bundle("rev-k8s", scope=SCOPE))
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
                                                                              make_bundle, collector):
    """deploy/opa/config.yaml's ${AOM_BUNDLE_SERVICE_URL} without the env ConfigMap: not "", but the text.
    Seen in the status OPA reports to the collector (its own GET /v1/status is refused by system.authz)."""
    bundle_server.publish(RESOURCE, make_bundle("rev-k8s", scope=SCOPE))
    sidecar = run_k8s_sidecar(env={"AOM_DECISION_LOG_SERVICE_URL": collector.url, "AOM_DEPLOYMENT": "x"})

    def failed() -> dict[str, Any] | None:
        for status in reversed(collector.statuses):
            if status.get("bundles", {}).get(BUNDLE, {}).get("code") == "bundle_error":
                return status
        return None

    status = wait_until(failed, 10, "a bundle_error")
    message = status["bundles"][BUNDLE]["message"]
    assert "$%7BAOM_BUNDLE_SERVICE_URL%7D/bundles/airflow/bundle.tar.gz" in message, message
    assert status["labels"]["deployment"] == "x"
    assert sidecar.probe() == 500
    assert bundle_server.served_since(0) == 0


def test_an_unwritable_persistence_directory_means_no_bundle_is_ever_activated(run_k8s_sidecar, bundle_server,
                                                                                make_bundle, tmp_path, collector):
    """Why the container spec mounts an emptyDir at persistence_directory (readOnlyRootFilesystem)."""
    blocker = tmp_path / "read-only"
    blocker.write_text("a file, so nothing can be created below it (even by root)")
    bundle_server.publish(RESOURCE, make_bundle("rev-k8s", scope=SCOPE))
    sidecar = run_k8s_sidecar(persistence=blocker / "opa")
    wait_until(lambda: bundle_server.served_since(0) >= 2, 15, "two downloads of the bundle")
    assert sidecar.probe() == 500
    # The status OPA reports (its GET /v1/status is refused by system.authz) never shows an active revision.
    collector.wait_for(lambda c: c.statuses)
    assert not [s for s in collector.statuses if s.get("bundles", {}).get(BUNDLE, {}).get("active_revision")]


def test_a_disk_rego_under_the_bundle_root_is_served_until_the_bundle_activates_then_erased(
    run_k8s_sidecar, bundle_server, make_bundle, tmp_path
):
    """The bundle's roots do not keep a file from the sidecar's disk out of airflow/pod at first: one defining
    the decision itself is what the hook gets until the bundle activates."""
    extra = tmp_path / "extra.rego"
    extra.write_text('package airflow.pod\n\ndecision := "disk"\n')
    sidecar = run_k8s_sidecar(extra_paths=[extra])

    def read() -> Any:
        answer = requests.post(f"{sidecar.url}/v1/data/airflow/pod/decision", json={"input": {}}, timeout=5)
        return answer.json().get("result")

    assert read() == "disk"
    bundle_server.publish(RESOURCE, make_bundle("rev-k8s", scope=SCOPE))
    wait_active(sidecar, "rev-k8s")
    assert read() != "disk", "erased when the bundle activated"


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


def test_a_bundle_service_outage_and_the_persistent_volume_fallback(run_k8s_sidecar, bundle_server, make_bundle,
                                                                    tmp_path, collector):
    """Issue 25, item 7. With values.yaml's emptyDir, a scheduler pod started while the bundle service is down
    never becomes ready (its startup probe holds the scheduler back); with values-persistent-bundle.yaml's
    volume, which outlives the pod, the new pod activates the last good revision from it and is ready."""
    overlay = _load("values-persistent-bundle.yaml")["scheduler"]["extraVolumes"]
    [volume] = [v for v in overlay if v["name"] == "opa-persistence"]
    assert volume["persistentVolumeClaim"]["claimName"] == _load("opa-bundle-pvc.yaml")["metadata"]["name"]
    claim = tmp_path / "pvc"  # the PersistentVolumeClaim: the same folder for every scheduler pod

    bundle_server.publish(RESOURCE, make_bundle("rev-last-good", scope=SCOPE))
    first = run_k8s_sidecar(persistence=claim)
    wait_active(first, "rev-last-good")
    first.stop()  # the scheduler pod is deleted (a node drain, an upgrade) ...
    bundle_server.stop()  # ... while the bundle service is down

    def download_failed(since: int) -> bool:
        """A status report (GET /v1/status is refused by system.authz) of a failed download after ``since``."""
        return any(s.get("bundles", {}).get(BUNDLE, {}).get("code") == "bundle_error" for s in collector.statuses[since:])

    since = len(collector.statuses)
    without = run_k8s_sidecar()  # values.yaml: a new emptyDir
    wait_until(lambda: download_failed(since), 15, "the download failed")
    assert without.probe() == 500, "no revision: the startup probe fails, the scheduler does not start"
    without.stop()

    fallback = run_k8s_sidecar(persistence=claim)
    wait_active(fallback, "rev-last-good")
    assert fallback.probe() == 200, "ready with the last good revision"
    since = len(collector.statuses)
    wait_until(lambda: download_failed(since), 15, "the download failed, the revision stays")
    assert fallback.probe() == 200


# -- OPA's own API: system.authz (deploy/opa/authz.rego, issue 25) ---------------------------------------------

#: What task code on the pod's loopback tried (issue 25): replace the decision-log mask with one that masks
#: nothing, write data beside the bundle's roots and under them, and delete the authorization policy.
EMPTY_MASK = "package system.log\n\nmask := set()\n"


def writes(etc: Path) -> list[tuple[str, str, str]]:
    mask, authz = (f"/v1/policies{etc / name}" for name in ("mask.rego", "authz.rego"))  # the ids of disk files
    return [
        ("PUT", mask, EMPTY_MASK),
        ("PUT", "/v1/policies/intruder.rego", EMPTY_MASK.replace("system.log", "intruder")),
        ("DELETE", authz, ""),
        ("PUT", "/v1/data/airflow_opa_mutation_doctor_probe", "{}"),
        ("PUT", "/v1/data/airflow/pod/config", "{}"),
        ("PATCH", "/v1/data", '[{"op": "add", "path": "/airflow_opa_mutation_doctor_probe", "value": 1}]'),
        ("DELETE", "/v1/data/airflow/pod/config", ""),
    ]


def assert_writes_refused(url: str, etc: Path, **tls: Any) -> None:
    for method, path, body in writes(etc):
        answer = requests.request(method, url + path, data=body, timeout=5, **tls)
        assert answer.status_code == 401, f"{method} {path}: {answer.status_code} {answer.text}"
        assert answer.json()["code"] == "unauthorized"


def test_the_shipped_sidecar_refuses_writes_and_its_mask_holds(run_k8s_sidecar, bundle_server, make_bundle,
                                                                make_hook, collector):
    """Issue 25: task code's PUT /v1/policies/<mask> answered 200 and the next decision event carried env
    values in clear. The container as shipped refuses every write (401), before and after the bundle, on both
    listeners, and still serves decisions, /health and /metrics; the events stay masked."""
    sidecar = run_k8s_sidecar()
    assert_writes_refused(sidecar.url, sidecar.etc)  # before the bundle: only the disk files are loaded
    bundle_server.publish(RESOURCE, make_bundle("rev-k8s", scope=SCOPE))
    wait_until(lambda: sidecar.probe() == 200, MAX_DELAY + 8, "the startup probe passes")
    assert_writes_refused(sidecar.url, sidecar.etc)
    assert_writes_refused(sidecar.diag_url, sidecar.etc)
    for path in ("/v1/status", "/v1/config", "/v1/policies", "/v1/data"):
        assert requests.get(sidecar.url + path, timeout=5).status_code == 401, path
    assert requests.post(sidecar.url + "/v1/query", json={"query": "data"}, timeout=5).status_code == 401
    assert requests.get(sidecar.url + "/metrics", timeout=5).status_code == 200
    assert sidecar.probe("/health") == 200 and sidecar.probe("/metrics") == 200

    hook = make_hook(sidecar, require_bundles=True)
    pod = _secret_pod("after-refused-writes")
    hook(pod)
    assert pod.spec.containers[0].security_context.allow_privilege_escalation is False, "the bundle's policies ran"
    decision_id = hook.evaluate(_secret_pod("evaluated")).decision.decision_id
    [event] = collector.wait_for(lambda c: [e for e in c.events if e.get("decision_id") == decision_id])
    assert "/input/pod/spec/containers/0/env/1/value" in event["erased"], "the mask from disk still masks"
    sidecar.stop()
    assert LEAK.encode() not in b"".join(collector.raw_logs)


def test_the_admission_opa_as_shipped_serves_the_webhooks_and_refuses_writes(run_k8s_sidecar, bundle_server,
                                                                              make_bundle, tmp_path):
    """deploy/kubernetes/admission-opa.yaml's container: the API server's POSTs of /v0/data/.../mutate and
    /validate are answered over TLS; writes are refused."""
    from ..reliability.certs import TestCA

    ca = TestCA(tmp_path)
    served = ca.issue("opa", ips=("127.0.0.1",))
    tls = tmp_path / "opa-tls"
    tls.mkdir()
    (tls / "tls.crt").write_bytes(served.cert.read_bytes())
    (tls / "tls.key").write_bytes(served.key.read_bytes())
    deployment = next(d for d in yaml.safe_load_all((K8S / "admission-opa.yaml").read_text()) if d["kind"] == "Deployment")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    bundle_server.publish(RESOURCE, make_bundle("rev-admission", scope=SCOPE))
    opa = run_k8s_sidecar(container=container, tls=tls)
    wait_until(lambda: opa.probe() == 200, 30, f"the readiness probe passes\n{opa.logs()[-3000:]}")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "airflow"},
           "spec": {"containers": [{"name": "base", "image": "busybox:1", "securityContext": {"privileged": True}}]}}
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
              "request": {"uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                          "resource": {"group": "", "version": "v1", "resource": "pods"}, "namespace": "airflow",
                          "operation": "CREATE", "userInfo": {"username": "someone"}, "object": pod}}
    for webhook in ("mutate", "validate"):
        # As the API server calls a webhook: its timeout as a query parameter.
        answer = requests.post(f"{opa.url}/v0/data/airflow/pod/admission/{webhook}?timeout=5s", json=review,
                               timeout=10, verify=str(ca.cert_path))
        assert answer.status_code == 200, answer.text
        assert answer.json()["response"]["uid"] == "u-1", answer.json()
    assert_writes_refused(opa.url, opa.etc, verify=str(ca.cert_path))
