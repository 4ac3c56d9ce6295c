"""Image volumes and host-path mounts through the real hook and a real OPA serving the shipped library.

Two walk-arounds of issue 22 (item 4), as a DAG author writes them with the kubernetes client's models:

- an ``image`` volume (``V1ImageVolumeSource``, Kubernetes 1.33+) is pulled by the same runtime as a
  container image, so ``allowed_registries``, ``image_tag`` and ``image_registry_mirror`` judge and rewrite
  it like one; the rewrite must come back into the V1Pod at ``spec.volumes[i].image.reference``;
- a ``hostPath`` volume under an allowed prefix mounted read-write (a writable ``/var/log`` is a known
  container escape): ``deny_host_path`` requires ``readOnly: true`` on every mount of it unless the prefix's
  entry says ``read_only: false``.

Runs on both model generations (kubernetes 37's pydantic models and 36's classic ones, scripts/test).
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k8s

from airflow_opa_mutation import PodDenied

from .conftest import worker_pod

MIRROR = {"docker.io": "registry.example.com/dockerhub"}


def with_image_volume(reference: str, name: str = "payload") -> k8s.V1Pod:
    pod = worker_pod()
    pod.spec.volumes = [k8s.V1Volume(name=name, image=k8s.V1ImageVolumeSource(reference=reference))]
    pod.spec.containers[0].volume_mounts = [k8s.V1VolumeMount(name=name, mount_path="/payload", read_only=True)]
    return pod


def enabled(**policies: dict[str, Any]) -> dict[str, Any]:
    return {"policies": {name: {"enabled": True, "params": params} for name, params in policies.items()}}


def test_allowed_registries_denies_an_image_volume_from_elsewhere(library_opa, make_hook):
    hook = make_hook(library_opa(enabled(allowed_registries={"registries": ["docker.io/apache"]})))
    pod = with_image_volume("evil.example.net/payload")
    before = pod.to_dict()
    with pytest.raises(PodDenied) as raised:
        hook(pod)
    assert pod.to_dict() == before
    assert [(m.policy, m.msg) for m in raised.value.messages] == [
        (
            "allowed_registries",
            'volume "payload" uses image "evil.example.net/payload" (evil.example.net/payload), '
            "which is not from an allowed registry",
        )
    ]


def test_the_mirror_rewrites_an_image_volume_and_the_registries_judge_the_rewrite(library_opa, make_hook):
    config = enabled(
        image_registry_mirror={"mirrors": MIRROR},
        allowed_registries={"registries": ["registry.example.com"]},
    )
    hook = make_hook(library_opa(config))
    pod = with_image_volume("busybox:1.36")
    hook(pod)
    assert pod.spec.volumes[0].image.reference == "registry.example.com/dockerhub/library/busybox:1.36"
    assert pod.spec.containers[0].image == "registry.example.com/dockerhub/apache/airflow:3.3.2"


def test_image_tag_judges_an_image_volume(library_opa, make_hook):
    hook = make_hook(library_opa({"policies": {"image_tag": {"params": {"action": "deny"}}}}))
    with pytest.raises(PodDenied) as raised:
        hook(with_image_volume("registry.example.com/models/bert", name="model"))
    assert [m.msg for m in raised.value.messages if m.policy == "image_tag"] == [
        'volume "model" image "registry.example.com/models/bert" has no tag (implicitly :latest); '
        "pin a version or a digest"
    ]


# pod_security (baseline forbids every hostPath) off, as it must be for an allowed prefix to matter.
HOST_LOGS = {
    "policies": {
        "pod_security": {"enabled": False},
        "deny_host_path": {"params": {"allowed_prefixes": ["/var/log/airflow"]}},
    }
}


def with_host_logs(*mounts: k8s.V1VolumeMount) -> k8s.V1Pod:
    pod = worker_pod()
    pod.spec.volumes = [
        k8s.V1Volume(name="task-logs", host_path=k8s.V1HostPathVolumeSource(path="/var/log/airflow/tasks"))
    ]
    pod.spec.containers[0].volume_mounts = list(mounts)
    return pod


def test_a_read_write_mount_of_an_allowed_host_path_is_denied(library_opa, make_hook):
    hook = make_hook(library_opa(HOST_LOGS))
    pod = with_host_logs(
        k8s.V1VolumeMount(name="task-logs", mount_path="/logs", read_only=True),
        k8s.V1VolumeMount(name="task-logs", mount_path="/opt/airflow/logs", sub_path="tasks"),
    )
    with pytest.raises(PodDenied) as raised:
        hook(pod)
    assert [(m.policy, m.msg) for m in raised.value.messages] == [
        (
            "deny_host_path",
            'container "base" mounts volume "task-logs" (host path "/var/log/airflow/tasks") at '
            '"/opt/airflow/logs" without readOnly: true; its allowed prefix is read-only',
        )
    ]


def test_read_only_mounts_of_an_allowed_host_path_pass(library_opa, make_hook):
    hook = make_hook(library_opa(HOST_LOGS))
    pod = with_host_logs(
        k8s.V1VolumeMount(name="task-logs", mount_path="/logs", read_only=True),
        k8s.V1VolumeMount(name="task-logs", mount_path="/opt/airflow/logs", sub_path="tasks", read_only=True),
    )
    hook(pod)
    assert [m.read_only for m in pod.spec.containers[0].volume_mounts] == [True, True]
