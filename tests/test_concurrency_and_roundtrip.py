"""Many threads through one hook (no cross-talk), and property-based pod <-> JSON round trips."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from kubernetes import client as k8s

from airflow_opa_mutation import pod_from_json, pod_to_json

from .conftest import decision_policy, worker_pod
from .replay import replayable

ECHO = """
decision := {"patch": [
    {"op": "add", "path": "/metadata/annotations/echo-name", "value": input.pod.metadata.name},
    {"op": "add", "path": "/metadata/annotations/echo-uid", "value": input.request.uid},
    {"op": "add", "path": "/metadata/labels/containers", "value": format_int(count(input.pod.spec.containers), 10)},
]}
"""


def test_threads_share_one_hook_without_cross_talk(start_opa, make_hook):
    hook = make_hook(start_opa(decision_policy(ECHO)), audit_annotation=False)
    pods = [worker_pod(f"pod-{i}", containers=1 + i % 3) for i in range(400)]

    def run(pod):
        hook(pod)
        return pod

    with ThreadPoolExecutor(max_workers=16) as pool:
        done = list(pool.map(run, pods))
    uids = set()
    for i, pod in enumerate(done):
        assert pod.metadata.annotations["echo-name"] == f"pod-{i}"
        assert pod.metadata.labels["containers"] == str(1 + i % 3)
        assert isinstance(pod.spec.containers[0], k8s.V1Container)
        uids.add(pod.metadata.annotations["echo-uid"])
    assert len(uids) == len(pods)


# -- property-based round trips ------------------------------------------------------------------------

names = st.from_regex(r"[a-z]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)
label_values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=63)
quantities = st.from_regex(r"[1-9][0-9]{0,3}(m|Mi|Gi|Ki)?", fullmatch=True)
ports = st.one_of(st.integers(1, 65535), names)


@st.composite
def containers(draw):
    return k8s.V1Container(
        name=draw(names),
        image=draw(st.one_of(st.none(), st.from_regex(r"[a-z]{1,10}(/[a-z]{1,10})?(:[a-z0-9.]{1,8})?", fullmatch=True))),
        args=draw(st.one_of(st.none(), st.lists(st.text(max_size=20), max_size=3))),
        env=draw(st.one_of(st.none(), st.lists(
            st.builds(k8s.V1EnvVar, name=names, value=st.one_of(st.none(), st.text(max_size=30))), max_size=3))),
        resources=draw(st.one_of(st.none(), st.builds(
            k8s.V1ResourceRequirements,
            limits=st.one_of(st.none(), st.dictionaries(st.sampled_from(["cpu", "memory"]), quantities, max_size=2)),
            requests=st.one_of(st.none(), st.dictionaries(st.sampled_from(["cpu", "memory"]), quantities, max_size=2)),
        ))),
        liveness_probe=draw(st.one_of(st.none(), st.builds(
            k8s.V1Probe, http_get=st.builds(k8s.V1HTTPGetAction, port=ports, path=st.just("/health")),
            period_seconds=st.one_of(st.none(), st.integers(1, 300))))),
        security_context=draw(st.one_of(st.none(), st.builds(
            k8s.V1SecurityContext, run_as_non_root=st.one_of(st.none(), st.booleans()),
            run_as_user=st.one_of(st.none(), st.integers(0, 2**31 - 1))))),
    )


@st.composite
def pods(draw):
    return k8s.V1Pod(
        api_version="v1",
        kind="Pod",
        metadata=k8s.V1ObjectMeta(
            name=draw(names),
            namespace=draw(st.one_of(st.none(), names)),
            labels=draw(st.one_of(st.none(), st.dictionaries(names, label_values, max_size=5))),
            annotations=draw(st.one_of(st.none(), st.dictionaries(names, st.text(max_size=200), max_size=3))),
        ),
        spec=k8s.V1PodSpec(
            containers=draw(st.lists(containers(), min_size=1, max_size=4)),
            init_containers=draw(st.one_of(st.none(), st.lists(containers(), max_size=2))),
            tolerations=draw(st.one_of(st.none(), st.lists(st.builds(
                k8s.V1Toleration, key=names, operator=st.sampled_from(["Equal", "Exists"]),
                effect=st.sampled_from(["NoSchedule", "NoExecute"]),
                toleration_seconds=st.one_of(st.none(), st.integers(0, 3600))), max_size=2))),
            node_selector=draw(st.one_of(st.none(), st.dictionaries(names, names, max_size=2))),
            host_network=draw(st.one_of(st.none(), st.booleans())),
        ),
    )


@replayable(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pods())
def test_pod_json_pod_round_trip(pod):
    doc = pod_to_json(pod)
    assert doc == k8s.ApiClient().sanitize_for_serialization(pod)  # exactly Kubernetes JSON
    json.dumps(doc)  # and plain JSON
    back = pod_from_json(doc)
    assert type(back) is k8s.V1Pod
    assert back.to_dict() == pod.to_dict()
    assert pod_to_json(back) == doc
    for original, decoded in zip(pod.spec.containers, back.spec.containers, strict=True):
        assert type(decoded) is k8s.V1Container
        if original.liveness_probe is not None:
            assert decoded.liveness_probe.http_get.port == original.liveness_probe.http_get.port


def test_hand_built_pod_with_dicts_where_models_belong():
    """Airflow users build pods with dicts inside models; after a decision everything is a model."""
    pod = worker_pod()
    pod.spec.containers[0].resources = {"limits": {"cpu": "1"}}
    doc = pod_to_json(pod)
    assert doc["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "1"}}
    back = pod_from_json(doc)
    assert isinstance(back.spec.containers[0].resources, k8s.V1ResourceRequirements)
