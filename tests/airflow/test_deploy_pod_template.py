"""deploy/kubernetes/worker-pod-template.yaml as the KubernetesExecutor's pod_template_file: Airflow's own
PodGenerator builds worker pods from it and the hook runs them through the shipped policies in a real OPA.
The OPA sidecar must come through as a native sidecar, exactly as written; the worker gets no
service-account token; and a DAG author's pod_override cannot turn the worker's own enforcement off
(issue 22, items 3 and 6), with the shipped defaults and with the shipped deploy configuration
(deploy/kubernetes/sidecar-policy-config.yaml)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from airflow_opa_mutation import PodDenied
from airflow_opa_mutation.cli._local_opa import LocalOpa

from ..conftest import POLICIES, REPO
from ..test_kubernetes_manifests import SIDECAR
from .conftest import construct, override

pytestmark = pytest.mark.airflow

TEMPLATE = REPO / "deploy" / "kubernetes" / "worker-pod-template.yaml"
DEPLOY_CONFIG = REPO / "deploy" / "kubernetes" / "sidecar-policy-config.yaml"
OPT_IN = "airflow-opa-mutation/automount-service-account-token"


@pytest.fixture(scope="module")
def deployed_opa() -> Iterator[LocalOpa]:
    """The library with the shipped deploy configuration, as the bundle the sidecars poll holds it."""
    opa = LocalOpa([POLICIES, DEPLOY_CONFIG]).start()
    yield opa
    opa.stop()


def test_worker_pods_built_from_the_template_keep_the_sidecar_through_the_shipped_policies(library_opa,
                                                                                          process_hook):
    process_hook(library_opa.url)
    pod = construct(TEMPLATE, override(image="registry.example.com/etl:2.1.0"))
    [opa] = pod.spec.init_containers
    assert isinstance(opa, k8s.V1Container) and opa.restart_policy == "Always"
    assert k8s.ApiClient().sanitize_for_serialization(opa) == SIDECAR
    assert {v.name for v in pod.spec.volumes} >= {"opa-config", "opa-persistence", "logs", "airflow-config"}
    base = pod.spec.containers[0]
    assert base.name == "base" and base.image == "registry.example.com/etl:2.1.0"
    assert base.security_context.allow_privilege_escalation is False
    assert pod.metadata.labels["dag_id"] == "etl"


def test_dry_run_mode_changes_nothing_either(library_opa, process_hook):
    process_hook(library_opa.url, mode="dry-run")
    built = construct(TEMPLATE, mutate=False)
    mutated = construct(TEMPLATE)
    api = k8s.ApiClient()
    assert api.sanitize_for_serialization(mutated) == api.sanitize_for_serialization(built)


# -- issue 22, item 3: no token a DAG author grants themselves ------------------------------------------


@pytest.mark.parametrize("opa_fixture", ["library_opa", "deployed_opa"])
def test_workers_from_the_template_get_no_token(opa_fixture, request, process_hook):
    process_hook(request.getfixturevalue(opa_fixture).url)
    pod = construct(TEMPLATE)
    assert OPT_IN not in (pod.metadata.annotations or {}), "the template no longer opts every worker in"
    assert pod.spec.automount_service_account_token is False


@pytest.mark.parametrize("opa_fixture", ["library_opa", "deployed_opa"])
def test_a_pod_override_cannot_grant_itself_a_token(opa_fixture, request, process_hook):
    """The pod's own annotation and its own automountServiceAccountToken: true both grant nothing."""
    process_hook(request.getfixturevalue(opa_fixture).url)
    pod = construct(TEMPLATE, {"pod_override": k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(annotations={OPT_IN: "true"}),
        spec=k8s.V1PodSpec(automount_service_account_token=True, containers=[]),
    )})
    assert pod.metadata.annotations[OPT_IN] == "true"
    assert pod.spec.automount_service_account_token is False


@pytest.mark.parametrize("account", ["airflow-scheduler", "airflow-webserver", "airflow-api-server",
                                     "prod-airflow-scheduler", "airflow-triggerer", "airflow-dag-processor"])
def test_workers_cannot_run_as_the_control_planes_accounts(account, deployed_opa, process_hook):
    from airflow.providers.cncf.kubernetes.exceptions import PodMutationHookException

    process_hook(deployed_opa.url)
    with pytest.raises(PodMutationHookException) as raised:
        construct(TEMPLATE, {"pod_override": k8s.V1Pod(spec=k8s.V1PodSpec(service_account_name=account,
                                                                           containers=[]))})
    cause = raised.value.__cause__
    assert isinstance(cause, PodDenied)
    assert [m.msg for m in cause.messages if m.policy == "service_account_token"] == [
        f'pod runs as service account "{account}", which is denied (denied_service_accounts)']


# -- issue 22, item 6: the worker's own enforcement is not the DAG author's to turn off -----------------


def _env(name: str, value: str) -> dict[str, k8s.V1Pod]:
    return override(env=[k8s.V1EnvVar(name=name, value=value)])


def _sidecar(**fields: object) -> dict[str, k8s.V1Pod]:
    """A pod_override naming the sidecar: the PodGenerator merges it into the template's by name."""
    return {"pod_override": k8s.V1Pod(spec=k8s.V1PodSpec(containers=[],
                                                         init_containers=[k8s.V1Container(name="opa", **fields)]))}


TAMPERING = {
    "mode from the environment": (_env("AIRFLOW__OPA_MUTATION__MODE", "dry-run"),
                                  'sets environment variable "AIRFLOW__OPA_MUTATION__MODE"'),
    "fail open and a wrong token": (_env("AIRFLOW__OPA_MUTATION__FAIL_MODE", "open"),
                                    'sets environment variable "AIRFLOW__OPA_MUTATION__FAIL_MODE"'),
    "another airflow.cfg": (_env("AIRFLOW_CONFIG", "/tmp/mine/airflow.cfg"),
                            'sets environment variable "AIRFLOW_CONFIG"'),
    "an envFrom prefix": (override(env_from=[k8s.V1EnvFromSource(
        prefix="AIRFLOW__OPA_MUTATION__", config_map_ref=k8s.V1ConfigMapEnvSource(name="settings"))]),
        'imports environment variables with prefix "AIRFLOW__OPA_MUTATION__"'),
    "sidecar args": (_sidecar(args=["run", "--server", "--addr=127.0.0.1:8181", "/tmp/allow.rego"]),
                     'initContainer "opa" is the enforcement sidecar, but its field args differs'),
    "sidecar image": (_sidecar(image="evil.example.net/opa:1.22.3"),
                      'initContainer "opa" is the enforcement sidecar, but its field image differs'),
    "sidecar bundle service": (_sidecar(env=[k8s.V1EnvVar(name="AOM_BUNDLE_SERVICE_URL", value="https://evil")]),
                               'initContainer "opa" is the enforcement sidecar, but its field env differs'),
    "sidecar keys mounted over": (_sidecar(volume_mounts=[k8s.V1VolumeMount(name="logs", mount_path="/etc/opa/keys")]),
                                  'initContainer "opa" is the enforcement sidecar, but its field volumeMounts differs'),
}


@pytest.mark.parametrize("opa_fixture", ["library_opa", "deployed_opa"])
@pytest.mark.parametrize(("executor_config", "expected"), TAMPERING.values(), ids=TAMPERING.keys())
def test_a_pod_override_cannot_turn_the_workers_enforcement_off(executor_config, expected, opa_fixture, request,
                                                                 process_hook):
    from airflow.providers.cncf.kubernetes.exceptions import PodMutationHookException

    process_hook(request.getfixturevalue(opa_fixture).url)
    with pytest.raises(PodMutationHookException) as raised:
        construct(TEMPLATE, executor_config)
    cause = raised.value.__cause__
    assert isinstance(cause, PodDenied)
    messages = [m.msg for m in cause.messages if m.policy == "protect_enforcement"]
    assert any(expected in msg for msg in messages), messages


def test_the_deployment_requires_the_sidecar_in_worker_pods(template_file, deployed_opa, library_opa, process_hook):
    """A worker pod without the sidecar (a DAG's own pod_template_file, say) lets whatever listens on the
    hook's url answer for OPA: denied by the shipped deploy configuration (require_sidecar)."""
    from airflow.providers.cncf.kubernetes.exceptions import PodMutationHookException

    process_hook(deployed_opa.url)
    with pytest.raises(PodMutationHookException) as raised:
        construct(template_file)
    assert [m.msg for m in raised.value.__cause__.messages if m.policy == "protect_enforcement"] == [
        'pod has no enforcement sidecar: an init container named "opa" (require_sidecar)']
    process_hook(library_opa.url)
    construct(template_file)  # the library's own default: deployments without worker sidecars work
