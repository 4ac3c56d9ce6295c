"""``max_volumes``: a limit before OPA, like ``max_pod_bytes`` and ``max_containers``.

Image volumes made every volume an image to parse and judge (and a patch operation for the mirror and
pull-policy mutators): 20,000 of them fit in a megabyte and kept OPA busy for half a minute on one pod.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k8s

from airflow_opa_mutation import PodDenied, Settings
from airflow_opa_mutation.cli._local_opa import free_port
from airflow_opa_mutation.config import load_settings

from .conftest import POLICIES, worker_pod


def with_volumes(count: int) -> k8s.V1Pod:
    pod = worker_pod()
    pod.spec.volumes = [
        k8s.V1Volume(name=f"v{i}", image=k8s.V1ImageVolumeSource(reference="evil.example.net/payload"))
        for i in range(count)
    ]
    return pod


def test_max_volumes_is_a_setting_with_a_default() -> None:
    assert Settings().max_volumes == 256
    assert load_settings({"AIRFLOW__OPA_MUTATION__MAX_VOLUMES": "3"}, airflow_conf=None).max_volumes == 3


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_a_pod_above_max_volumes_is_denied_without_asking_opa(make_hook: Any, mode: str) -> None:
    """Nothing listens at the URL: under fail_mode=open an unreachable OPA would let the pod through, so
    the denial can only come from the limit, checked first."""
    pod = with_volumes(4)
    with pytest.raises(PodDenied) as raised:
        make_hook(f"http://127.0.0.1:{free_port()}", fail_mode=mode, max_volumes=3)(pod)
    assert "the pod has 4 volumes, above max_volumes = 3" in str(raised.value)
    assert [m.policy for m in raised.value.messages] == ["airflow-opa-mutation/limits"]


def test_at_the_limit_the_pod_is_evaluated(make_hook: Any, start_opa: Any) -> None:
    opa = start_opa(paths=[POLICIES])
    pod = with_volumes(3)
    make_hook(opa, max_volumes=3)(pod)  # evaluated as usual: the shipped defaults let an image volume in
    assert pod.spec.automount_service_account_token is False
