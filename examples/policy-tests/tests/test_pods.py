"""Pods through the hook against our policies: the fixture ``opa_mutation`` comes with airflow-opa-mutation."""

from kubernetes import client as k8s


def worker_pod(image: str, dag_id: str = "etl") -> k8s.V1Pod:
    """A pod as the KubernetesExecutor labels it (the hook reads the task's ids from these labels)."""
    labels = {"dag_id": dag_id, "task_id": "load", "run_id": "manual__2026-12-01", "try_number": "1",
              "kubernetes_executor": "True", "airflow-worker": "1"}
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name=f"{dag_id}-load", namespace="airflow", labels=labels),
        spec=k8s.V1PodSpec(restart_policy="Never", containers=[k8s.V1Container(name="base", image=image)]),
    )


def test_worker_pods_are_hardened_and_sized(opa_mutation):
    result = opa_mutation.run_pod(worker_pod("registry.example.com/etl:1.4.2"))

    assert not result.denied and result.warn == []
    base = result.pod.spec.containers[0]
    assert base.security_context.run_as_non_root is True
    assert base.security_context.capabilities.drop == ["ALL"]
    assert base.resources.requests == {"cpu": "250m", "memory": "512Mi"}
    assert {"security_context", "resource_defaults"} <= set(result.policies)


def test_mutable_image_tags_are_refused(opa_mutation):
    # a pod as Kubernetes JSON works too
    pod = {"metadata": {"name": "adhoc", "namespace": "airflow"},
           "spec": {"containers": [{"name": "base", "image": "python:latest"}]}}

    result = opa_mutation.run_pod(pod)

    assert result.denied
    assert [m.policy for m in result.deny_messages] == ["image_tag"]
    assert "latest" in result.deny[0]


def test_the_exempted_dag_is_left_alone(opa_mutation):
    result = opa_mutation.run_pod(worker_pod("python:latest", dag_id="ops_debug"))

    assert not result.denied and not result.changed and result.ops == []


def test_the_library_defaults_only_warn(start_opa_mutation):
    # Another OPA, same policies, without our configuration: what a team gets before it configures anything.
    defaults = start_opa_mutation(config={})

    result = defaults.run_pod(worker_pod("python:latest"))

    assert not result.denied
    assert any("latest" in message for message in result.warn)
    assert result.pod.spec.containers[0].resources is None  # resource_defaults is off by default
