"""deploy/ and docker-compose.yml against real OPA processes: the compose collector, the sidecar command,
the configuration's refusal to run without a verification key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import requests
import yaml

from airflow_opa_mutation.cli._local_opa import free_port, opa_binary

from ..conftest import REPO, decision_policy
from .conftest import CONFIG, RESOURCE, SCOPE, compose_certificate, injected_marker, secret_pod, wait_active
from .servers import BundleServer

COLLECTOR = REPO / "deploy" / "collector" / "collector.py"


def test_compose_collector_prints_opas_decision_events(start_opa, make_hook, pod, tmp_path):
    port = free_port()
    out = (tmp_path / "collector.out").open("w+")
    process = subprocess.Popen([sys.executable, str(COLLECTOR), "--host", "127.0.0.1", "--port", str(port)],
                               stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "collector did not start"
            time.sleep(0.05)
        opa = start_opa(
            decision_policy('decision := {"patch": [{"op": "add", "path": "/metadata/labels/x", "value": "y"}]}'),
            paths=[REPO / "deploy" / "opa" / "mask.rego"],
            args=["--set", f"services.c.url=http://127.0.0.1:{port}", "--set", "decision_logs.service=c",
                  "--set", "decision_logs.reporting.min_delay_seconds=1",
                  "--set", "decision_logs.reporting.max_delay_seconds=1"],
        )
        outcome = make_hook(opa).evaluate(pod)
        decision_id = outcome.decision.decision_id
        deadline = time.monotonic() + 15
        while True:
            out.seek(0)
            lines = [json.loads(line) for line in out.read().splitlines() if line.startswith("{")]
            events = [e for e in lines if e.get("kind") == "decision" and e.get("decision_id") == decision_id]
            if events:
                break
            assert time.monotonic() < deadline, lines
            time.sleep(0.1)
        assert "/input/pod/spec/containers/0/env/0/value" in events[0]["erased"]
    finally:
        process.terminate()
        process.wait(timeout=10)
        out.close()


@pytest.mark.parametrize(("keys", "message"), [
    (None, "config error: json: cannot unmarshal string"),  # keys: "${AOM_BUNDLE_KEYS}", kept literally
    ("", 'invalid configuration for bundle "airflow": no verification keys configured'),
    ("{}", 'invalid configuration for bundle "airflow": no verification keys configured'),
])
def test_sidecar_refuses_to_start_without_the_public_key(tmp_path, keys, message):
    """deploy/opa/config.yaml reads its keys from ${AOM_BUNDLE_KEYS}; forgetting them (no ConfigMap
    airflow-opa-bundle-keys, an empty one, no --set-file) is a start-up error, not a sidecar that would
    accept any bundle."""
    env = {k: v for k, v in os.environ.items() if k != "AOM_BUNDLE_KEYS"}
    env |= {"AOM_BUNDLE_SERVICE_URL": "http://127.0.0.1:9", "AOM_DECISION_LOG_SERVICE_URL": "http://127.0.0.1:9",
            "AOM_DEPLOYMENT": "x"}
    if keys is not None:
        env["AOM_BUNDLE_KEYS"] = keys
    done = subprocess.run(
        [opa_binary(), "run", "--server", "--addr", f"127.0.0.1:{free_port()}", "--config-file", str(CONFIG),
         "--set", f"persistence_directory={tmp_path}"],
        check=False, capture_output=True, text=True, timeout=30, env=env,
    )
    assert done.returncode != 0
    assert message in done.stdout + done.stderr


def test_the_compose_sidecar_command_runs_on_a_real_opa(start_opa, collector, make_bundle, keys, make_hook,
                                                        monkeypatch, tmp_path):
    """docker-compose.yml's `opa` command, verbatim except the container paths (mapped back to the repo's
    files through its volumes), the service hosts (loopback servers instead of compose's DNS names) and a
    1 s decision-log upload delay (instead of 5-15 s). The bundle comes over HTTPS, from a server with the
    certificate the compose header makes, trusted through services.bundles.tls.ca_cert only. OPA's API
    refuses every write (issue 25: a replaced mask sent env values in clear) and still decides."""
    service = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["opa"]
    tls = compose_certificate(tmp_path / "bundle-tls", san="IP:127.0.0.1")
    mounts = {v.split(":")[1]: REPO / v.split(":")[0] for v in service["volumes"]}
    mounts["/etc/opa/keys/airflow_bundle.pub.pem"] = keys.public  # scripts/bundle-build keygen's output there
    mounts["/etc/opa/bundle-tls/tls.crt"] = tls / "tls.crt"

    def host(arg: str) -> str:
        for container, path in mounts.items():
            arg = arg.replace(container, str(path))
        return arg

    command = [host(arg) for arg in service["command"]]
    assert command[:2] == ["run", "--server"]
    assert "--authorization=basic" in command and "--skip-version-check" in command
    at = command.index("--addr")
    paths = [arg for arg in command[-2:] if arg.endswith(".rego")]
    assert paths == [str(REPO / "deploy" / "opa" / "authz.rego"), str(REPO / "deploy" / "opa" / "mask.rego")]
    args = command[2:at] + command[at + 2:-2]
    args += ["--set", "decision_logs.reporting.min_delay_seconds=1", "--set", "decision_logs.reporting.max_delay_seconds=1"]
    bundle_server = BundleServer(tmp_path / "bundle-server", tls=(tls / "tls.crt", tls / "tls.key"))
    try:
        for name, value in service["environment"].items():
            monkeypatch.setenv(name, str(value))
        assert service["environment"]["AOM_BUNDLE_SERVICE_URL"].startswith("https://")
        monkeypatch.setenv("AOM_BUNDLE_SERVICE_URL", bundle_server.url)
        monkeypatch.setenv("AOM_DECISION_LOG_SERVICE_URL", collector.url)
        bundle_server.publish(RESOURCE, make_bundle("rev-compose", scope=service["environment"]["AOM_DEPLOYMENT"]))

        opa = start_opa(paths=paths, args=args)
        wait_active(opa, "rev-compose")
        for method, path, body in [("PUT", f"/v1/policies{paths[1]}", "package system.log\n\nmask := set()\n"),
                                   ("PUT", "/v1/data/airflow_opa_mutation_doctor_probe", "{}"),
                                   ("PATCH", "/v1/data", '[{"op": "add", "path": "/x", "value": 1}]')]:
            answer = requests.request(method, opa.url + path, data=body, timeout=5)
            assert answer.status_code == 401, f"{method} {path}: {answer.status_code} {answer.text}"
        outcome = make_hook(opa).evaluate(secret_pod())
        assert injected_marker(outcome.after) == "rev-compose"
        events = collector.wait_for(lambda c: [e for e in c.events if e.get("decision_id") == outcome.decision.decision_id])
        assert events[0]["labels"]["deployment"] == "docker-compose"
        assert "/input/pod/spec/containers/0/env/0/value" in events[0]["erased"], "the mask still masks"
    finally:
        bundle_server.stop()


def test_the_compose_healthcheck_command_reports_whether_the_server_has_activated_its_bundle(
    start_opa, bundle_server, collector, make_bundle, keys, monkeypatch
):
    """docker-compose.yml's `opa` healthcheck, run as Docker runs it (CMD: no shell), with /opa the pinned
    binary and the server's port 8181 replaced by the test server's port: failing before the bundle is
    active, passing after, failing again once the server is gone."""
    service = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["opa"]
    kind, binary, *check = service["healthcheck"]["test"]
    assert (kind, binary) == ("CMD", "/opa")
    monkeypatch.setenv("AOM_BUNDLE_SERVICE_URL", bundle_server.url)
    monkeypatch.setenv("AOM_DECISION_LOG_SERVICE_URL", collector.url)
    monkeypatch.setenv("AOM_DEPLOYMENT", SCOPE)
    opa = start_opa(paths=[REPO / "deploy" / "opa" / "mask.rego"], args=[
        "--config-file", str(CONFIG), "--set-file", f"keys.airflow_bundle.key={keys.public}",
        "--set", "bundles.airflow.persist=false",
        "--set", "bundles.airflow.polling.min_delay_seconds=1", "--set", "bundles.airflow.polling.max_delay_seconds=2"])
    command = [opa_binary(), *(arg.replace("127.0.0.1:8181", f"127.0.0.1:{opa.port}") for arg in check)]
    assert any(f"127.0.0.1:{opa.port}/health?bundles=true" in arg for arg in command), command

    def healthy() -> bool:
        return subprocess.run(command, check=False, capture_output=True, timeout=30).returncode == 0

    assert requests.get(f"{opa.url}/health?bundles=true", timeout=2).status_code == 500
    assert not healthy(), "no bundle activated yet: unhealthy (the old `eval --fail true` passed here)"
    bundle_server.publish(RESOURCE, make_bundle("rev-health"))
    wait_active(opa, "rev-health")
    assert healthy()
    opa.stop()
    assert not healthy()
