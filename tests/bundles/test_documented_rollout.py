"""The deployment docs' commands, run in the order a reader follows them, against a real OPA.

Every fenced block preceded by ``<!-- rollout-test step=N ... -->`` in docs/running-at-scale.md and
docs/helm.md is run by bash, in step order, in an empty working folder (``scripts/`` and ``deploy/`` are
this clone's; ``org/airflow-opa.yaml`` is the reader's own configuration). ``kubectl`` and ``helm`` are
tests/bundles/fake_cluster.py, which keeps the ConfigMaps the commands create; after each block the test
publishes the bundle the commands built (build/bundle/bundle.tar.gz) to a loopback bundle server and,
after ``helm upgrade`` or ``kubectl rollout restart``, starts the scheduler's sidecar exactly as
deploy/kubernetes/values.yaml defines it (args, envFrom, projected volume) from those ConfigMaps: a new
pod, with a new emptyDir. The marker's ``expect=`` says what the step must lead to:

- ``ready``: the sidecar's startup probe (``/health?bundles=true``) passes with the published revision;
- ``refused``: the sidecar keeps its revision and reports the published bundle's verification error.

The only edit the test makes is the one the docs ask for: the bundle service and collector URLs in the
env ConfigMap. Afterwards, two attacks on the final set-up: re-publishing the first bundle (signed with
the retired key) and a bundle signed for another deployment (scope) are both refused.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_opa_mutation.cli._bundle_builder import manifest_of
from airflow_opa_mutation.cli._local_opa import free_port

from ..conftest import REPO
from .conftest import BUNDLE, MAX_DELAY, MIN_DELAY, RESOURCE, wait_until
from .test_kubernetes_sidecar import Sidecar

DOCS = [REPO / "docs" / "running-at-scale.md", REPO / "docs" / "helm.md"]
MARKER = re.compile(r"^<!-- rollout-test step=(\d+)((?: \w+=\S+)*) -->$")
FAKE = Path(__file__).with_name("fake_cluster.py")
SIDECAR_ENV = ("AOM_BUNDLE", "AOM_DECISION", "AOM_DEPLOYMENT")  # what the sidecar's ConfigMaps set


def documented_steps() -> list[tuple[int, dict[str, str], str, str]]:
    """(step, attributes, where, bash) of every marked block, in step order."""
    steps = []
    for doc in DOCS:
        lines = doc.read_text().splitlines()
        for i, line in enumerate(lines):
            match = MARKER.match(line.strip())
            if not match:
                continue
            fence = lines[i + 1].strip()
            assert fence == "```bash", f"{doc.name}:{i + 2}: a marked block must be ```bash"
            end = lines.index("```", i + 2)
            attributes = dict(a.split("=", 1) for a in match.group(2).split())
            steps.append((int(match.group(1)), attributes, f"{doc.name}:{i + 1}", "\n".join(lines[i + 2:end])))
    steps.sort(key=lambda s: s[0])
    assert [s[0] for s in steps] == list(range(1, len(steps) + 1)), "steps numbered 1..n, each once"
    return steps


class Reader:
    """The reader's shell, cluster (ConfigMaps) and the scheduler pod's sidecar."""

    def __init__(self, tmp: Path, bundle_server: Any, collector: Any) -> None:
        self.work = tmp / "work"
        self.kube = tmp / "kube"
        self.bin = tmp / "bin"
        for folder in (self.work / "org", self.kube, self.bin):
            folder.mkdir(parents=True)
        for name in ("scripts", "deploy", "policies"):  # the reader works in a clone
            (self.work / name).symlink_to(REPO / name)
        # The reader's organisation configuration (docs: --config org/airflow-opa.yaml).
        (self.work / "org" / "airflow-opa.yaml").write_text("policies:\n  image_tag:\n    enabled: true\n")
        for tool in ("kubectl", "helm"):
            wrapper = self.bin / tool
            wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" {tool} "$@"\n')
            wrapper.chmod(0o755)
        self.bundle_server = bundle_server
        self.collector = collector
        self.sidecar: Sidecar | None = None
        self.reports_from = 0
        self.pods = 0
        self.events_seen = 0
        self.published: list[Path] = []
        self.last_bundle: bytes | None = None
        subprocess.run(["git", "init", "-q", str(self.work)], check=True)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(SIDECAR_ENV)}
        env |= {"PATH": f"{self.bin}:{env['PATH']}", "AOM_FAKE_KUBE": str(self.kube),
                "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
        return env

    def run(self, where: str, script: str) -> None:
        # A commit per step, so `git describe --always` in the docs names a new revision each time.
        subprocess.run(["git", "-C", str(self.work), "commit", "-q", "--allow-empty", "-m", where],
                       check=True, env=self.env())
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=self.work, env=self.env(),
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, f"{where}: exit {done.returncode}\n{script}\n{done.stdout}\n{done.stderr}"
        self._edit_env_config_map()

    def _edit_env_config_map(self) -> None:
        """helm.md §3: "Edit them" — the two service URLs, here the loopback servers."""
        path = self.kube / "configmaps" / "airflow-opa-sidecar-env.yaml"
        if path.exists():
            document = yaml.safe_load(path.read_text())
            document["data"] |= {"AOM_BUNDLE_SERVICE_URL": self.bundle_server.url,
                                 "AOM_DECISION_LOG_SERVICE_URL": self.collector.url}
            path.write_text(yaml.safe_dump(document))

    def publish_if_built(self) -> str | None:
        built = self.work / "build" / "bundle" / "bundle.tar.gz"
        if not built.exists() or built.read_bytes() == self.last_bundle:
            return None
        self.last_bundle = built.read_bytes()
        copy = self.kube / f"published-{len(self.published)}.tar.gz"
        copy.write_bytes(self.last_bundle)
        self.published.append(copy)
        self.bundle_server.publish(RESOURCE, copy)
        return str(manifest_of(copy)["revision"])

    def restarted(self) -> bool:
        events = (self.kube / "events.log").read_text().splitlines() if (self.kube / "events.log").exists() else []
        new = events[self.events_seen:]
        self.events_seen = len(events)
        return any(e.startswith(("helm upgrade", "rollout restart")) for e in new)

    def config_map(self, name: str) -> dict[str, str]:
        path = self.kube / "configmaps" / f"{name}.yaml"
        assert path.exists(), f"ConfigMap {name} was never created by the documented commands"
        data = yaml.safe_load(path.read_text()).get("data") or {}
        assert isinstance(data, dict)
        return data

    def start_scheduler_pod(self, monkeypatch: pytest.MonkeyPatch) -> Sidecar:
        """values.yaml's scheduler sidecar, from the ConfigMaps as they are now (a new pod)."""
        if self.sidecar is not None:
            self.sidecar.stop()
        values = yaml.safe_load((REPO / "deploy" / "kubernetes" / "values.yaml").read_text())
        [container] = values["scheduler"]["extraInitContainers"]
        volumes = {v["name"]: v for v in values["scheduler"]["extraVolumes"]}
        self.pods += 1
        pod = self.kube / f"pod-{self.pods}"
        mounts: dict[str, Path] = {}
        for mount in container["volumeMounts"]:
            volume = volumes[mount["name"]]
            folder = pod / mount["name"]
            folder.mkdir(parents=True)
            for source in volume.get("projected", {}).get("sources", []):
                data = self.config_map(source["configMap"]["name"])
                items = source["configMap"].get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    assert item["key"] in data, f"{source['configMap']['name']} has no key {item['key']}"
                    (folder / item["path"]).parent.mkdir(parents=True, exist_ok=True)
                    (folder / item["path"]).write_text(data[item["key"]])
            mounts[mount["mountPath"]] = folder
        for name in list(os.environ):
            if name.startswith(SIDECAR_ENV):
                monkeypatch.delenv(name)
        for source in container.get("envFrom", []):
            for key, value in self.config_map(source["configMapRef"]["name"]).items():
                monkeypatch.setenv(key, value)
        port, diag_port = free_port(), free_port()

        def local(arg: str) -> str:
            if arg.startswith("--addr="):
                return f"--addr=127.0.0.1:{port}"
            if arg.startswith("--diagnostic-addr="):
                return f"--diagnostic-addr=127.0.0.1:{diag_port}"
            for path, folder in mounts.items():
                arg = arg.replace(path, str(folder))
            return arg

        args = [local(a) for a in container["args"]]
        positional = [a for a in args[1:] if not a.startswith("-")]
        flags = [a for a in args if a not in positional]
        persistence = mounts["/var/lib/opa"]
        flags += [f"--set=bundles.{BUNDLE}.polling.min_delay_seconds={MIN_DELAY}",
                  f"--set=bundles.{BUNDLE}.polling.max_delay_seconds={MAX_DELAY}",
                  f"--set=persistence_directory={persistence}"]
        self.reports_from = len(self.collector.statuses)  # this pod's status reports come after
        self.sidecar = Sidecar(flags + positional, port=port, diag_port=diag_port, persistence=persistence,
                               etc=mounts["/etc/opa"]).start()
        return self.sidecar

    def bundle_state(self) -> dict[str, Any]:
        """The bundle's state in the pod's last status report to the collector (the shipped system.authz
        refuses GET /v1/status, as it must: task code shares the loopback)."""
        assert self.sidecar is not None
        for status in reversed(self.collector.statuses[self.reports_from:]):
            state = status.get("bundles", {}).get(BUNDLE)
            if isinstance(state, dict):
                return state
        return {}


def _wait_refused(reader: Reader, since: float, what: str) -> str:
    """The published bundle was downloaded again and refused; returns OPA's message."""
    wait_until(lambda: reader.bundle_server.served_since(since) >= 2, 15, f"two downloads of {what}")
    wait_until(lambda: reader.bundle_state().get("code") == "bundle_error", 15, f"{what} refused")
    state = reader.bundle_state()
    return str(state.get("message"))


def test_the_documented_rollout_and_key_rotation_work_as_written(bundle_server, collector, tmp_path, monkeypatch):
    steps = documented_steps()
    assert any(a.get("expect") == "ready" for _, a, _, _ in steps)
    reader = Reader(tmp_path, bundle_server, collector)
    active: str | None = None
    try:
        for number, attributes, where, script in steps:
            reader.run(where, script)
            since = time.monotonic()
            published = reader.publish_if_built()
            if reader.restarted():
                sidecar = reader.start_scheduler_pod(monkeypatch)
                assert sidecar.probe("/health") == 200, f"step {number} ({where}): OPA started"
            expect = attributes.get("expect")
            if expect == "ready":
                assert reader.sidecar is not None, f"step {number} ({where}): no sidecar started yet"
                revision = manifest_of(reader.published[-1])["revision"]
                wait_until(lambda r=revision: reader.bundle_state().get("active_revision") == r, MAX_DELAY + 10,
                           f"step {number} ({where}): revision {revision} active\n{reader.sidecar.logs()}")
                assert reader.sidecar.probe() == 200, "startup and readiness probes pass"
                active = revision
            elif expect == "refused":
                assert published, f"step {number} ({where}): nothing new was published"
                message = _wait_refused(reader, since, f"step {number}'s bundle")
                assert reader.bundle_state().get("active_revision") == active, message
            else:
                assert expect is None, f"step {number}: unknown expect={expect}"

        sidecar = reader.sidecar
        assert sidecar is not None and active is not None
        # Roll back to the first bundle, signed with the key the rotation retired: refused.
        first = reader.published[0]
        assert manifest_of(first)["revision"] != active
        since = bundle_server.publish(RESOURCE, first)
        message = _wait_refused(reader, since, "the bundle signed with the retired key")
        assert "verification key corresponding to ID" in message and "not found" in message, message
        assert reader.bundle_state().get("active_revision") == active
        assert sidecar.probe() == 200, "still serving the active revision"
    finally:
        if reader.sidecar is not None:
            reader.sidecar.stop()


def test_a_bundle_signed_for_another_deployment_is_refused(bundle_server, collector, tmp_path, monkeypatch):
    """docs' keys and ConfigMaps, a correct bundle for this deployment, then one with another --scope."""
    reader = Reader(tmp_path, bundle_server, collector)
    steps = documented_steps()
    first_ready = next(i for i, (_, a, _, _) in enumerate(steps) if a.get("expect") == "ready")
    try:
        for _, _, where, script in steps[: first_ready + 1]:
            reader.run(where, script)
            reader.publish_if_built()
            if reader.restarted():
                reader.start_scheduler_pod(monkeypatch)
        assert reader.sidecar is not None
        revision = manifest_of(reader.published[-1])["revision"]
        wait_until(lambda: reader.bundle_state().get("active_revision") == revision, MAX_DELAY + 10, "ready")
        deployment = reader.config_map("airflow-opa-sidecar-env")["AOM_DEPLOYMENT"]

        build = next(script for _, _, _, script in steps if "--scope" in script)  # the docs' first build
        assert f"--scope {deployment}" in build, "the docs sign for the deployment the env ConfigMap names"
        reader.run("another deployment's build", build.replace(f"--scope {deployment}", "--scope staging"))
        since = time.monotonic()
        assert reader.publish_if_built() is not None
        message = _wait_refused(reader, since, "the bundle for scope staging")
        assert "scope mismatch" in message, message
        assert reader.bundle_state().get("active_revision") == revision
    finally:
        if reader.sidecar is not None:
            reader.sidecar.stop()
