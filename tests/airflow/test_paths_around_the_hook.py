"""Issue 22 item 8: the ways Airflow creates pods that never reach the hook, or reach it incomplete.

docs/threat-model.md ("Pods the hook never sees") lists them; these tests hold the list to the installed
Airflow 3.3.2 and cncf.kubernetes 10.25.0, with the shipped policies in a real OPA and, where an object is
created, a real kube-apiserver (tests/kube) enforcing Pod Security: the backstop for what the hook misses.

- ``KubernetesJobOperator`` builds and hooks the pod template, then merges ``full_job_spec`` (or
  ``job_template_file``) under it: init containers and volumes are appended, and any pod field the hooked
  template leaves empty or false is taken from the spec (``merge_objects`` keeps only truthy values), so
  ``automountServiceAccountToken: true`` even undoes the policy's ``false``.
- ``KubernetesCreateResourceOperator`` (``create_from_yaml``) and ``SparkKubernetesOperator`` (a
  SparkApplication: the Spark operator's controller creates the pods) never call the hook.
- The installed Airflow calls the hook from a fixed set of places, named by the last test.
"""

from __future__ import annotations

import ast
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from airflow_opa_mutation import AUDIT_ANNOTATION, MutationHook, OpaUnavailable, PodDenied

from ..kube.cluster import ControlPlane
from .conftest import assert_hardened_by_the_library, task_context

pytestmark = pytest.mark.airflow

RUN_ID = "manual__2026-12-07T12:00:00+00:00"

#: What a DAG author adds through the Job spec: a privileged init container, the host's network and the
#: service-account token the library's policy turns off.
FULL_JOB_SPEC = k8s.V1Job(
    spec=k8s.V1JobSpec(
        template=k8s.V1PodTemplateSpec(
            spec=k8s.V1PodSpec(
                host_network=True,
                automount_service_account_token=True,
                init_containers=[
                    k8s.V1Container(name="setup", image="busybox:1.36",
                                    security_context=k8s.V1SecurityContext(privileged=True)),
                ],
                containers=[],
            )
        )
    )
)


def make_job_operator(config_file: str, namespace: str = "data", **kwargs: Any) -> Any:
    from airflow.providers.cncf.kubernetes.operators.job import KubernetesJobOperator
    from airflow.sdk import DAG

    with DAG("warehouse", schedule=None):
        return KubernetesJobOperator(
            task_id="load", image="ghcr.io/example/loader:2.1", namespace=namespace, name="load",
            cmds=["load"], kubernetes_conn_id=None, config_file=config_file, in_cluster=False,
            full_job_spec=FULL_JOB_SPEC, parallelism=1, wait_until_job_complete=False, **kwargs,
        )


def test_job_operator_merges_full_job_spec_after_the_hook(kubeconfig, library_opa, process_hook):
    hook = process_hook(library_opa.url)
    operator = make_job_operator(kubeconfig)
    job = operator.build_job_request_obj(task_context(operator, run_id=RUN_ID))

    # The hook saw the operator's pod template only, and hardened it ...
    seen = operator.pod_request_obj
    assert_hardened_by_the_library(seen)
    assert AUDIT_ANNOTATION in seen.metadata.annotations
    assert not seen.spec.init_containers and not seen.spec.host_network
    # ... then full_job_spec was merged under it: what it adds reaches the Job unjudged.
    template = job.spec.template
    [setup] = template.spec.init_containers
    assert (setup.name, setup.security_context.privileged) == ("setup", True)
    assert template.spec.host_network is True
    assert template.spec.automount_service_account_token is True  # the policy's false, undone
    assert template.metadata.annotations[AUDIT_ANNOTATION] == seen.metadata.annotations[AUDIT_ANNOTATION]

    # What the policies would have said had the hook seen the Job's pod template:
    outcome = hook.evaluate(k8s.V1Pod(metadata=template.metadata, spec=template.spec))
    assert isinstance(outcome.error, PodDenied)
    assert "deny_privileged" in str(outcome.error) and "deny_host_namespaces" in str(outcome.error)


def test_a_job_from_full_job_spec_is_stored_and_pod_security_judges_its_pods(kube_cluster: ControlPlane,
                                                                             kube_namespace, library_opa,
                                                                             process_hook):
    """The backstop: Pod Security ``enforce`` does not judge the Job (only ``warn`` and ``audit`` do), it
    judges each pod the Job controller creates from the template. No controller runs here, so the test
    creates the pod the controller would."""
    process_hook(library_opa.url)
    namespace = kube_namespace("baseline", prefix="job")
    operator = make_job_operator(str(kube_cluster.kubeconfig), namespace=namespace)
    created = operator.create_job(operator.build_job_request_obj(task_context(operator, run_id=RUN_ID)))

    stored = kube_cluster.request("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs/{created.metadata.name}")
    assert stored.ok, stored
    spec = stored.body["spec"]["template"]["spec"]
    assert spec["initContainers"][0]["securityContext"]["privileged"] is True
    assert spec["hostNetwork"] is True and spec["automountServiceAccountToken"] is True

    pod = kube_cluster.create_pod(namespace, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "load-0"},
                                              "spec": spec})
    assert pod.status == 403, pod
    assert 'violates PodSecurity "baseline:latest"' in pod.message
    assert "privileged" in pod.message and "host namespaces" in pod.message


# -- operators that never call the hook ---------------------------------------------------------------------


@pytest.fixture
def refusing_hook(stopped_opa_url, process_hook) -> MutationHook:
    """The process-wide hook with OPA down and ``fail_mode = closed``: any pod handed to it raises."""
    from airflow import settings

    hook = process_hook(stopped_opa_url, fail_mode="closed")
    probe = k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="probe", namespace="data"),
                      spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="main", image="busybox:1.36")]))
    with pytest.raises(OpaUnavailable):
        settings.pod_mutation_hook(probe)
    return hook


PRIVILEGED_POD_YAML = """\
apiVersion: v1
kind: Pod
metadata:
  name: applied
spec:
  hostNetwork: true
  containers:
    - name: main
      image: busybox:1.36
      securityContext:
        privileged: true
"""


def make_create_resource(config_file: str, namespace: str) -> Any:
    from airflow.providers.cncf.kubernetes.operators.resource import KubernetesCreateResourceOperator

    return KubernetesCreateResourceOperator(task_id="apply", yaml_conf=PRIVILEGED_POD_YAML, namespace=namespace,
                                            kubernetes_conn_id=None, config_file=config_file)


def test_create_resource_operator_never_calls_the_hook(kube_cluster: ControlPlane, kube_namespace, refusing_hook):
    open_namespace = kube_namespace(prefix="yaml")
    make_create_resource(str(kube_cluster.kubeconfig), open_namespace).execute({})
    stored = kube_cluster.get_pod(open_namespace, "applied")
    assert stored.ok, stored
    assert stored.body["spec"]["containers"][0]["securityContext"]["privileged"] is True
    assert stored.body["spec"]["hostNetwork"] is True
    assert AUDIT_ANNOTATION not in (stored.body["metadata"].get("annotations") or {})

    from kubernetes.utils import FailToCreateError

    guarded = kube_namespace("baseline", prefix="yaml")
    with pytest.raises(FailToCreateError) as refused:
        make_create_resource(str(kube_cluster.kubeconfig), guarded).execute({})
    assert 'violates PodSecurity \\"baseline:latest\\"' in str(refused.value)  # the API's JSON, quoted


SPARK_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    # A group under k8s.io needs this annotation; the Spark operator's own CRD carries an approval link.
    "metadata": {"name": "sparkapplications.sparkoperator.k8s.io",
                 "annotations": {"api-approved.kubernetes.io": "unapproved, a test fixture"}},
    "spec": {
        "group": "sparkoperator.k8s.io",
        "scope": "Namespaced",
        "names": {"plural": "sparkapplications", "singular": "sparkapplication", "kind": "SparkApplication"},
        "versions": [{
            "name": "v1beta2", "served": True, "storage": True, "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
        }],
    },
}


@pytest.fixture
def spark_crd(kube_cluster: ControlPlane) -> None:
    """The Spark operator's SparkApplication resource, without the Spark operator."""
    created = kube_cluster.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", SPARK_CRD)
    assert created.ok or created.status == 409, created
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/sparkapplications.sparkoperator.k8s.io"
    for _ in range(100):  # established within a second here
        conditions = kube_cluster.request("GET", path).body.get("status", {}).get("conditions") or []
        if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the SparkApplication CRD was not established")


def test_spark_operator_never_calls_the_hook(kube_cluster: ControlPlane, kube_namespace, spark_crd,
                                             refusing_hook):
    """SparkKubernetesOperator subclasses KubernetesPodOperator but sets ``pod_request_obj`` itself: the
    SparkApplication is created, and its driver's privileged securityContext with it, without a decision.
    With no Spark operator here, no driver pod ever appears: the task fails reading it."""
    from airflow.providers.cncf.kubernetes.operators.spark_kubernetes import SparkKubernetesOperator
    from airflow.sdk import DAG
    from kubernetes.client.exceptions import ApiException

    namespace = kube_namespace("baseline", prefix="spark")
    with DAG("warehouse", schedule=None):
        operator = SparkKubernetesOperator(
            task_id="aggregate", name="aggregate", namespace=namespace, kubernetes_conn_id=None,
            config_file=str(kube_cluster.kubeconfig), in_cluster=False, reattach_on_restart=False,
            random_name_suffix=False, startup_timeout_seconds=0, get_logs=False,
            template_spec={"spark": {
                "apiVersion": "sparkoperator.k8s.io/v1beta2", "kind": "SparkApplication", "metadata": {},
                "spec": {"type": "Python", "mode": "cluster", "image": "apache/spark:3.5.3",
                         "mainApplicationFile": "local:///opt/job.py",
                         "driver": {"hostNetwork": True, "securityContext": {"privileged": True}},
                         "executor": {"instances": 1}},
            }},
        )
    with pytest.raises(ApiException) as no_driver:
        operator.execute(task_context(operator, run_id=RUN_ID))
    assert no_driver.value.status == 404  # the driver pod only the Spark operator would create

    stored = kube_cluster.request(
        "GET", f"/apis/sparkoperator.k8s.io/v1beta2/namespaces/{namespace}/sparkapplications/aggregate")
    assert stored.ok, stored
    assert stored.body["spec"]["driver"]["securityContext"] == {"privileged": True}
    assert stored.body["spec"]["driver"]["hostNetwork"] is True


# -- where the installed Airflow calls the hook -----------------------------------------------------------


def _hook_callers(root: Path) -> set[tuple[str, str]]:
    """(file, enclosing function) of every call of ``pod_mutation_hook`` and every call passing
    ``with_mutation_hook`` (other than a literal ``False``) under ``root``."""
    found: set[tuple[str, str]] = set()

    def visit(node: ast.AST, scope: list[str], path: Path) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                visit(child, [*scope, child.name], path)
                continue
            if isinstance(child, ast.Call):
                func = child.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                hooked = any(k.arg == "with_mutation_hook" and not (isinstance(k.value, ast.Constant)
                                                                     and k.value.value is False)
                             for k in child.keywords)
                if name == "pod_mutation_hook" or hooked:
                    found.add((path.relative_to(root).as_posix(), ".".join(scope)))
            visit(child, scope, path)

    for path in root.rglob("*.py"):
        text = path.read_text(errors="replace")
        if "pod_mutation_hook" in text or "with_mutation_hook" in text:
            visit(ast.parse(text), [], path)
    return found


def test_the_installed_airflow_calls_the_hook_from_these_places_only():
    """Every path to the hook in Airflow core and the installed providers. An operator reaches it only
    through one of these (a KubernetesPodOperator subclass through ``build_pod_request_obj``); a new entry
    after an upgrade is a new path for docs/threat-model.md."""
    import airflow

    assert _hook_callers(Path(airflow.__file__).parent) == {
        ("settings.py", "pod_mutation_hook"),  # the dispatcher to every registered hook
        ("providers/cncf/kubernetes/pod_generator.py", "PodGenerator.construct_pod"),
        ("providers/cncf/kubernetes/executors/kubernetes_executor_utils.py",
         "AirflowKubernetesScheduler._build_pod_request"),  # the KubernetesExecutor, in the scheduler
        ("providers/cncf/kubernetes/operators/pod.py", "KubernetesPodOperator.build_pod_request_obj"),
        ("providers/cncf/kubernetes/cli/kubernetes_command.py", "generate_pod_yaml"),  # generate-dag-yaml
        ("providers/cncf/kubernetes/template_rendering.py", "render_k8s_pod_yaml"),  # the rendered k8s spec
    }
