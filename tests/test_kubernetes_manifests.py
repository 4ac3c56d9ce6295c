"""deploy/kubernetes/: the OPA sidecar as Kubernetes objects, checked as data and against a real OPA.

Every object decodes as the kubernetes client's model and encodes back unchanged (no unknown or mistyped
field); the container spec has one source (opa-sidecar.yaml) and every copy equals it; the ConfigMap is
deploy/opa/ byte for byte; the Helm values configure the hook in dry-run with nothing overriding it; and the
worker pod template survives the project's own policies through the real hook (with the shipped defaults,
and with an organisation's configuration once sidecar-policy-config.yaml's keys are merged in).
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from airflow_opa_mutation import PodDenied
from airflow_opa_mutation._version import OPA_VERSION

from .conftest import POLICIES, REPO
from .test_compose import pinned

K8S = REPO / "deploy" / "kubernetes"
OPA_DIR = REPO / "deploy" / "opa"


def load(name: str) -> Any:
    return yaml.safe_load((K8S / name).read_text())


def decode(document: dict[str, Any], kind: str) -> Any:
    """The kubernetes model of ``document``; fails on any field the model does not carry as written."""
    api = k8s.ApiClient()
    model = getattr(k8s, kind)
    if hasattr(model, "model_validate"):  # kubernetes 37: pydantic, unknown fields raise
        obj = model.model_validate(document)
    else:  # kubernetes 36: classic models drop unknown fields silently; the round trip below catches it
        obj = api._ApiClient__deserialize(document, kind)  # type: ignore[attr-defined]
    assert api.sanitize_for_serialization(obj) == document, f"{kind} does not round-trip"
    return obj


SIDECAR = load("opa-sidecar.yaml")
VALUES = load("values.yaml")
TEMPLATE = load("worker-pod-template.yaml")
SIDECAR_VOLUMES = {"opa-config", "opa-persistence"}


def template_opa_volumes() -> list[dict[str, Any]]:
    return [v for v in TEMPLATE["spec"]["volumes"] if v["name"] in SIDECAR_VOLUMES]


# -- objects ------------------------------------------------------------------------------------------------


def test_every_object_decodes_as_the_kubernetes_model():
    decode(SIDECAR, "V1Container")
    for name in ("opa-configmap.yaml", "opa-env-configmap.yaml"):
        decode(load(name), "V1ConfigMap")
    pod = decode(TEMPLATE, "V1Pod")
    assert pod.spec.init_containers[0].restart_policy == "Always"
    for container in [*VALUES["scheduler"]["extraInitContainers"], *VALUES["workers"]["kubernetes"]["extraInitContainers"],
                      *VALUES["workers"]["celery"]["extraInitContainers"]]:
        decode(container, "V1Container")
    for volume in VALUES["scheduler"]["extraVolumes"]:
        decode(volume, "V1Volume")


def test_the_container_spec_has_one_source_and_every_copy_equals_it():
    copies = {
        "worker-pod-template.yaml initContainers": TEMPLATE["spec"]["initContainers"],
        "values.yaml scheduler.extraInitContainers": VALUES["scheduler"]["extraInitContainers"],
        "values.yaml workers.kubernetes.extraInitContainers": VALUES["workers"]["kubernetes"]["extraInitContainers"],
        "values.yaml workers.celery.extraInitContainers": VALUES["workers"]["celery"]["extraInitContainers"],
    }
    for where, containers in copies.items():
        assert containers == [SIDECAR], where
    volumes = template_opa_volumes()
    assert {v["name"] for v in volumes} == {m["name"] for m in SIDECAR["volumeMounts"]}
    for where in (VALUES["scheduler"], VALUES["workers"]["kubernetes"], VALUES["workers"]["celery"]):
        assert where["extraVolumes"] == volumes


def test_the_configmap_is_deploy_opa_byte_for_byte():
    data = load("opa-configmap.yaml")["data"]
    assert data == {name: (OPA_DIR / name).read_text() for name in ("authz.rego", "config.yaml", "mask.rego")}, (
        "regenerate deploy/kubernetes/opa-configmap.yaml (its header says how)"
    )


def test_the_env_configmap_sets_every_variable_the_opa_config_reads():
    """An unset ${VAR} stays literal in OPA's configuration: every one must come from the env ConfigMap."""
    config = yaml.safe_load((OPA_DIR / "config.yaml").read_text())
    wanted = {name for text in _strings(config) for name in re.findall(r"\$\{(\w+)\}", text)}
    env = load("opa-env-configmap.yaml")
    # AOM_BUNDLE_KEYS comes from ConfigMap airflow-opa-bundle-keys, which `bundle keys` fills (docs/helm.md §3).
    assert wanted and wanted - {"AOM_BUNDLE_KEYS"} <= set(env["data"])
    assert SIDECAR["envFrom"] == [{"configMapRef": {"name": env["metadata"]["name"]}},
                                  {"configMapRef": {"name": "airflow-opa-bundle-keys"}}]


# -- the sidecar container ------------------------------------------------------------------------------------


def _args() -> dict[str, str]:
    return dict(a.removeprefix("--").split("=", 1) for a in SIDECAR["args"] if a.startswith("--") and "=" in a)


def mounted(path: str) -> tuple[dict[str, Any], str]:
    """The volume holding container ``path`` and the path inside it."""
    volumes = {v["name"]: v for v in template_opa_volumes()}
    for mount in SIDECAR["volumeMounts"]:
        prefix = mount["mountPath"].rstrip("/") + "/"
        if path == mount["mountPath"] or path.startswith(prefix):
            return volumes[mount["name"]], path.removeprefix(prefix)
    raise AssertionError(f"nothing mounted at {path}")


def projected_source(volume: dict[str, Any], inner: str) -> tuple[str, str]:
    """(ConfigMap name, key) a projected volume puts at ``inner``. Without ``items`` a ConfigMap puts each
    of its keys at a file of that name: only the sidecar's own ConfigMap is used that way."""
    shipped = load("opa-configmap.yaml")
    for source in volume["projected"]["sources"]:
        config_map = source["configMap"]
        if "items" in config_map:
            items = {i["path"]: i["key"] for i in config_map["items"]}
        else:
            assert config_map["name"] == shipped["metadata"]["name"]
            items = {key: key for key in shipped["data"]}
        if inner in items:
            return config_map["name"], items[inner]
    raise AssertionError(f"{inner} not projected")


def test_the_sidecar_is_pinned_and_runs_the_shipped_configuration_mask_and_key():
    assert SIDECAR["image"] == f"openpolicyagent/opa:{OPA_VERSION}"
    assert SIDECAR["restartPolicy"] == "Always", "a native sidecar"
    args = SIDECAR["args"]
    assert args[:2] == ["run", "--server"]
    flags = _args()
    assert flags["addr"] == "127.0.0.1:8181", "the data API on loopback: the hook's default url, nobody else's"
    configmap = load("opa-configmap.yaml")
    volume, inner = mounted(flags["config-file"])
    assert projected_source(volume, inner) == (configmap["metadata"]["name"], "config.yaml")
    volume, inner = mounted(args[-1])
    assert projected_source(volume, inner) == (configmap["metadata"]["name"], "mask.rego"), "the mask from disk"
    # The trusted keys come from the environment (AOM_BUNDLE_KEYS, ConfigMap airflow-opa-bundle-keys), so a
    # key rotation changes no arg, no volume and nothing protect_enforcement expects (issue 25, item 5).
    assert "set-file" not in flags and not any(a.startswith("--set") for a in args)
    assert {"configMapRef": {"name": "airflow-opa-bundle-keys"}} in SIDECAR["envFrom"]
    config = yaml.safe_load((OPA_DIR / "config.yaml").read_text())
    assert config["keys"] == "${AOM_BUNDLE_KEYS}"
    assert config["bundles"]["airflow"]["signing"] == {"scope": "${AOM_DEPLOYMENT}", "exclude_files": []}
    # OPA's API: system.authz from disk decides every request (tests/bundles/test_kubernetes_sidecar.py runs it).
    assert flags["authorization"] == "basic" and "--skip-version-check" in args
    volume, inner = mounted(args[-2])
    assert projected_source(volume, inner) == (configmap["metadata"]["name"], "authz.rego"), "system.authz from disk"
    assert "--bundle" not in args and not any("decision_logs.console" in a for a in args)


def test_the_persistence_directory_is_a_writable_empty_dir():
    config = yaml.safe_load((OPA_DIR / "config.yaml").read_text())
    assert config["bundles"]["airflow"]["persist"] is True
    volume, inner = mounted(config["persistence_directory"])
    assert inner in ("", config["persistence_directory"]) and "emptyDir" in volume
    [mount] = [m for m in SIDECAR["volumeMounts"] if m["name"] == volume["name"]]
    assert not mount.get("readOnly")
    assert all(m.get("readOnly") for m in SIDECAR["volumeMounts"] if m is not mount)


def test_the_sidecar_is_locked_down_and_sized():
    security = SIDECAR["securityContext"]
    assert security == {
        "runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
    }
    resources = SIDECAR["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"] and resources["limits"]["memory"]


def test_probes_ask_for_an_activated_bundle_on_the_diagnostic_address():
    diagnostic_port = int(_args()["diagnostic-addr"].rsplit(":", 1)[1])
    assert _args()["diagnostic-addr"].startswith("0.0.0.0:"), "the kubelet probes the pod IP"
    ports = {p["name"]: p["containerPort"] for p in SIDECAR["ports"]}
    for probe in ("startupProbe", "readinessProbe"):
        get = SIDECAR[probe]["httpGet"]
        assert get["path"] == "/health?bundles=true", probe
        assert ports[get["port"]] == diagnostic_port, probe
        assert "host" not in get, "Pod Security baseline (1.34) forbids probe hosts"
    assert ports[SIDECAR["livenessProbe"]["httpGet"]["port"]] == diagnostic_port


# -- Helm values ------------------------------------------------------------------------------------------------


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def test_values_configure_the_hook_in_dry_run_with_nothing_overriding_it():
    section = VALUES["config"]["opa_mutation"]
    assert section["mode"] == "dry-run"
    assert section["url"] == "http://127.0.0.1:" + _args()["addr"].rsplit(":", 1)[1]
    assert section["require_bundles"] == "true"
    overrides = [s for s in _strings(VALUES) if "AIRFLOW__OPA_MUTATION__" in s.upper()]
    assert overrides == [], "an env variable would win over [opa_mutation] in airflow.cfg"
    assert "env" not in VALUES and "secret" not in VALUES and "extraEnv" not in VALUES


def test_values_pin_the_airflow_version_of_the_image():
    assert VALUES["airflowVersion"] == pinned("AIRFLOW_VERSION")
    assert VALUES["images"]["airflow"]["tag"].startswith(pinned("AIRFLOW_VERSION") + "-")


def test_docs_show_the_files_instead_of_private_copies():
    helm = (REPO / "docs" / "helm.md").read_text()
    for name in ("opa-sidecar.yaml", "opa-configmap.yaml", "opa-env-configmap.yaml", "worker-pod-template.yaml",
                 "values.yaml", "sidecar-policy-config.yaml"):
        assert f"deploy/kubernetes/{name}" in helm, name
    blocks = re.findall(r"```[a-z]*\n(.*?)```", helm, re.DOTALL)
    for block in blocks:
        for copied in ("image: openpolicyagent/opa", "securityContext:", "--config-file", "decision_logs",
                       "AIRFLOW__OPA_MUTATION__", "opa_mutation:"):
            assert copied not in block, f"docs/helm.md carries its own copy ({copied!r}):\n{block}"
    assert "--set=decision_logs.console=true" not in helm
    scale = (REPO / "docs" / "running-at-scale.md").read_text()
    assert "deploy/kubernetes/opa-sidecar.yaml" in scale
    assert "does *not* stop" not in scale


# -- the sidecar through the project's own policies --------------------------------------------------------


def worker_pod_from_template() -> dict[str, Any]:
    """The template as the executor hands it to the hook: a name, a namespace and Airflow's labels."""
    pod = copy.deepcopy(TEMPLATE)
    pod["metadata"].update(name="etl-load-0a1b2c3d", namespace="airflow")
    pod["metadata"]["labels"] = {"dag_id": "etl", "task_id": "load", "run_id": "scheduled__2026-11-25T0000000000-1",
                                 "try_number": "1", "kubernetes_executor": "True", "airflow-worker": "42"}
    return pod


#: An organisation's configuration that turns on the policies that touch every container.
ORGANISATION = {"airflow": {"pod": {"config": {"policies": {
    "env_injection": {"enabled": True, "params": {"env": {"HTTPS_PROXY": "http://proxy.example.com:3128"}}},
    "resource_defaults": {"enabled": True, "params": {"requests": {"cpu": "250m", "memory": "512Mi"},
                                                      "limits": {"cpu": "1", "memory": "2Gi"}}},
    "require_resource_limits": {"enabled": True, "params": {"resources": ["cpu", "memory"]}},
    "image_pull_policy": {"enabled": True, "params": {"policy": "Always", "override": True}},
    "allowed_registries": {"enabled": True, "params": {"registries": ["registry.example.com"]}},
}}}}}


def merged(base: Any, extra: Any) -> Any:
    """``extra`` merged into ``base`` the way a person merges the guidance into a file: lists joined."""
    if isinstance(base, dict) and isinstance(extra, dict):
        return {k: merged(base[k], extra[k]) if k in base and k in extra else copy.deepcopy(base.get(k, extra.get(k)))
                for k in {**base, **extra}}
    if isinstance(base, list) and isinstance(extra, list):
        return base + [v for v in extra if v not in base]
    return copy.deepcopy(extra)


def decide(start_opa, make_hook, tmp_path: Path, config: dict[str, Any] | None, pod: dict[str, Any] | None = None):
    paths = [POLICIES]
    if config is not None:
        path = tmp_path / f"config-{len(list(tmp_path.glob('config-*')))}.yaml"
        path.write_text(yaml.safe_dump(config))
        paths.append(path)
    opa = start_opa(paths=paths)
    pod = decode(pod or worker_pod_from_template(), "V1Pod")
    outcome = make_hook(opa).evaluate(pod)
    assert outcome.error is None or isinstance(outcome.error, PodDenied), outcome.error
    return outcome.decision, outcome.after


def sidecar_ops(decision) -> list[str]:
    return [f"{op.op['op']} {op.path} [{op.policy}]" for op in decision.patch if op.path.startswith("/spec/initContainers")]


def test_the_shipped_policies_leave_the_worker_pod_template_and_its_sidecar_alone(start_opa, make_hook, tmp_path):
    decision, _ = decide(start_opa, make_hook, tmp_path, None)
    assert decision.deny == () and decision.warn == ()
    assert list(decision.patch) == [], "the template already carries what the shipped policies add"


@pytest.mark.parametrize("guidance", [False, True], ids=["organisation-config", "with-sidecar-guidance"])
def test_an_organisations_policies_and_the_sidecar_guidance(guidance, start_opa, make_hook, tmp_path):
    config = merged(ORGANISATION, load("sidecar-policy-config.yaml")) if guidance else ORGANISATION
    decision, after = decide(start_opa, make_hook, tmp_path, config)
    base_ops = [op for op in decision.patch if op.path.startswith("/spec/containers/0/")]
    assert {op.policy for op in base_ops} >= {"env_injection", "resource_defaults", "image_pull_policy"}
    denies = [d.msg for d in decision.deny]
    if guidance:
        assert sidecar_ops(decision) == []
        assert denies == []
        assert after["spec"]["initContainers"] == [SIDECAR]
    else:
        touched = {op.rsplit("[", 1)[1].rstrip("]") for op in sidecar_ops(decision)}
        assert touched >= {"env_injection", "image_pull_policy"}, sidecar_ops(decision)
        assert "resource_defaults" not in touched, "the sidecar carries its own requests and limits"
        assert any('"opa"' in msg and "openpolicyagent/opa" in msg for msg in denies), denies
        assert not [msg for msg in denies if '"opa"' in msg and "limit" in msg], denies


def test_the_sidecar_guidance_exempts_nothing_and_switches_no_control_off():
    """The sidecar passes the controls on its own: the guidance has no exemption (matchers select pods, and
    container names and images are the DAG author's) and switches off only mutators for init containers."""
    guidance = load("sidecar-policy-config.yaml")["airflow"]["pod"]["config"]
    assert "exempt" not in guidance
    assert not [name for name, setting in guidance["policies"].items() if "exempt" in setting]
    off = {name for name, setting in guidance["policies"].items()
           if setting.get("params", {}).get("init_containers") is False}
    assert off == {"env_injection", "image_pull_policy", "image_registry_mirror"}  # mutators only
    limits = SIDECAR["resources"]
    assert set(limits["requests"]) == set(limits["limits"]) == {"cpu", "memory"}


@pytest.mark.parametrize("resource_defaults", [True, False], ids=["with-resource-defaults", "limits-required-only"])
def test_the_sidecar_guidance_lets_no_other_init_container_escape_resource_limits(resource_defaults, start_opa,
                                                                                   make_hook, tmp_path):
    """Issue 22, item 5: the guidance used to switch require_resource_limits (and resource_defaults) off for
    every init container to let the sidecar through, so a DAG author's init container escaped limits. The
    sidecar now carries the limits the policies ask for, and the guidance exempts nothing a DAG author can
    imitate: their init container gets the defaults, or is denied."""
    organisation = copy.deepcopy(ORGANISATION)
    if not resource_defaults:
        del organisation["airflow"]["pod"]["config"]["policies"]["resource_defaults"]
    guidance = load("sidecar-policy-config.yaml")
    config = merged(organisation, guidance)
    pod = worker_pod_from_template()
    pod["spec"]["initContainers"].append({"name": "git-sync", "image": "registry.example.com/git-sync:4.2.1"})
    decision, after = decide(start_opa, make_hook, tmp_path, config, pod)
    assert not [op for op in decision.patch if op.path.startswith("/spec/initContainers/0")], "the sidecar is left alone"
    assert not [d for d in decision.deny if '"opa"' in d.msg], "the sidecar is allowed, without an exemption"
    if resource_defaults:
        assert decision.deny == ()
        assert after["spec"]["initContainers"][1]["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}
    else:
        assert [(d.policy, d.msg) for d in decision.deny if "git-sync" in d.msg] == [
            ("require_resource_limits", 'initContainer "git-sync" has no cpu limit'),
            ("require_resource_limits", 'initContainer "git-sync" has no memory limit'),
        ]


def test_the_remote_bundle_configuration_verifies_signatures_and_masks_its_logs():
    """What the old docs' remote-bundle snippet lacked: signing, trusted keys, a mask, no console logging."""
    config = yaml.safe_load((OPA_DIR / "config.yaml").read_text())
    assert "signing" in config["bundles"]["airflow"] and "keyid" not in config["bundles"]["airflow"]["signing"]
    assert config["keys"] == "${AOM_BUNDLE_KEYS}", "trusted keys from `bundle keys` (tests/bundles/test_documented_rollout.py)"
    assert config["decision_logs"]["mask_decision"] == "/system/log/mask"
    assert not config["decision_logs"].get("console")


# -- what the deployment grants and protects (issue 22, items 3 and 6) -----------------------------------

DEPLOY_CONFIG = load("sidecar-policy-config.yaml")["airflow"]["pod"]["config"]["policies"]
OPT_IN = "airflow-opa-mutation/automount-service-account-token"


def served(start_opa, path: str) -> Any:
    """A document of the shipped library, as a real OPA serves it."""
    opa = start_opa(paths=[POLICIES])
    with urllib.request.urlopen(f"{opa.url}/v1/data/{path}", timeout=30) as response:
        return json.load(response)["result"]


def sidecar_volume_definitions() -> dict[str, Any]:
    return {v["name"]: {k: x for k, x in v.items() if k != "name"} for v in template_opa_volumes()}


def test_the_worker_pod_template_grants_itself_no_token():
    """Before issue 22 the template opted every worker in with the policy's annotation."""
    assert OPT_IN not in TEMPLATE["metadata"].get("annotations", {})
    assert TEMPLATE["spec"]["automountServiceAccountToken"] is False
    assert VALUES["workers"].get("podAnnotations", {}).get(OPT_IN) is None


def test_the_deployment_denies_the_control_planes_service_accounts():
    """The official chart names them <fullname>-scheduler, ...; fullname is the release when it contains
    "airflow", <release>-airflow otherwise: both forms are denied, the worker's own account is not."""
    denied = DEPLOY_CONFIG["service_account_token"]["params"]["denied_service_accounts"]
    for component in ("scheduler", "webserver", "api-server", "triggerer", "dag-processor"):
        for fullname in ("airflow", "prod-airflow", "analytics-airflow"):
            assert any(fnmatch.fnmatchcase(f"{fullname}-{component}", glob) for glob in denied), (fullname, component)
    assert not any(fnmatch.fnmatchcase(TEMPLATE["spec"]["serviceAccountName"], glob) for glob in denied)


def test_protect_enforcement_expects_the_shipped_sidecar(start_opa):
    """The policy's defaults and the deploy configuration both expect opa-sidecar.yaml and its volumes:
    bump the OPA version (or change an argument) in one and a test names the others."""
    defaults = served(start_opa, "airflow/pod/policies/protect_enforcement/defaults")["params"]
    for where, params in {"policy defaults": defaults, "sidecar-policy-config.yaml": DEPLOY_CONFIG["protect_enforcement"]["params"]}.items():
        assert params["sidecar_name"] == SIDECAR["name"], where
        for field, want in params["sidecar"].items():
            assert (SIDECAR.get(field) or None) == (want or None), (where, field)
        assert set(params["sidecar"]) >= {"image", "command", "args", "env", "envFrom", "volumeMounts", "restartPolicy"}
        assert params["sidecar_volumes"] == sidecar_volume_definitions(), where
    assert DEPLOY_CONFIG["protect_enforcement"]["params"]["require_sidecar"] is True, "values.yaml gives every worker one"
    assert defaults["require_sidecar"] is False, "deployments without worker sidecars must keep working"


def test_the_persistent_bundle_overlay_changes_only_the_schedulers_persistence_volume():
    """values-persistent-bundle.yaml replaces scheduler.extraVolumes (Helm replaces lists): everything but
    opa-persistence must stay values.yaml's, and that one is opa-bundle-pvc.yaml's claim (issue 25, item 7)."""
    overlay = load("values-persistent-bundle.yaml")
    assert set(overlay) == {"scheduler"} and set(overlay["scheduler"]) == {"extraVolumes"}
    shipped = {v["name"]: v for v in VALUES["scheduler"]["extraVolumes"]}
    changed = {v["name"]: v for v in overlay["scheduler"]["extraVolumes"]}
    assert set(changed) == set(shipped)
    assert {k: v for k, v in changed.items() if k != "opa-persistence"} == {
        k: v for k, v in shipped.items() if k != "opa-persistence"}
    claim = load("opa-bundle-pvc.yaml")
    assert changed["opa-persistence"] == {"name": "opa-persistence",
                                          "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}
    mount = next(m for m in SIDECAR["volumeMounts"] if m["name"] == "opa-persistence")
    config = yaml.safe_load((OPA_DIR / "config.yaml").read_text())
    assert mount["mountPath"] == config["persistence_directory"] and not mount.get("readOnly")
