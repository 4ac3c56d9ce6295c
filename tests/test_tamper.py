"""Issue 13, the Python side: a DAG author trying to walk around the policies, against real OPA.

Each test reproduces one finding of the issue (the attack as the issue describes it) and proves it
closed in both fail modes: a pod the hook cannot judge is never let through; only an OPA that is
unreachable or unhealthy may be bypassed by ``fail_mode = open``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from airflow_opa_mutation import (
    InvalidDecision,
    OpaMutationError,
    OpaUnavailable,
    PatchRejected,
    PodDenied,
    Settings,
)
from airflow_opa_mutation.cli._local_opa import free_port

from .conftest import POLICIES, decision_policy, worker_pod

MODES = ["closed", "open"]


def privileged(pod: k8s.V1Pod) -> k8s.V1Pod:
    pod.spec.containers[0].security_context = k8s.V1SecurityContext(privileged=True)
    return pod


def as_json(pod: k8s.V1Pod) -> str:
    return json.dumps(k8s.ApiClient().sanitize_for_serialization(pod), sort_keys=True)


@pytest.fixture(scope="module")
def library_opa(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The shipped library, with an organisation's exemption for the DAG ``ops_debug``."""
    from airflow_opa_mutation.cli._local_opa import LocalOpa

    config = tmp_path_factory.mktemp("config") / "config.json"
    config.write_text(json.dumps({"airflow": {"pod": {"config": {"exempt": {"debugging": {"dag_id": "ops_debug"}}}}}}))
    opa = LocalOpa([POLICIES, config]).start()
    yield opa
    opa.stop()


def denied_in_both_modes(make_hook: Any, url: str, pod: k8s.V1Pod, **settings: Any) -> list[PodDenied]:
    """The pod raises PodDenied with fail_mode closed and open, and is left exactly as it was."""
    before = as_json(pod)
    errors = []
    for mode in MODES:
        with pytest.raises(PodDenied) as raised:
            make_hook(url, fail_mode=mode, **settings)(pod)
        assert as_json(pod) == before
        errors.append(raised.value)
    return errors


# -- limits before OPA ------------------------------------------------------------------------------------


def test_limits_are_settings_with_the_contracts_defaults(monkeypatch):
    from airflow_opa_mutation.config import load_settings

    assert (Settings().max_pod_bytes, Settings().max_containers) == (1572864, 100)
    env = {"AIRFLOW__OPA_MUTATION__MAX_POD_BYTES": "2048", "AIRFLOW__OPA_MUTATION__MAX_CONTAINERS": "3"}
    loaded = load_settings(env, airflow_conf=None)
    assert (loaded.max_pod_bytes, loaded.max_containers) == (2048, 3)


def test_1500_tiny_containers_are_denied_by_max_containers(library_opa, make_hook):
    """Finding 2b: padding containers pushed evaluation past the timeout."""
    pod = privileged(worker_pod(containers=1500))
    for error in denied_in_both_modes(make_hook, library_opa.url, pod):
        assert "the pod has 1500 containers, above max_containers = 100" in str(error)


def test_init_and_ephemeral_containers_count_too(library_opa, make_hook):
    pod = worker_pod(containers=2)
    pod.spec.init_containers = [k8s.V1Container(name="init", image="busybox:1.36")]
    pod.spec.ephemeral_containers = [k8s.V1EphemeralContainer(name="debug", image="busybox:1.36")]
    for error in denied_in_both_modes(make_hook, library_opa.url, pod, max_containers=3):
        assert "4 containers, above max_containers = 3" in str(error)
    make_hook(library_opa, max_containers=4)(pod)  # at the limit: evaluated as usual


def test_a_pod_above_max_pod_bytes_is_denied(library_opa, make_hook):
    pod = worker_pod()
    pod.metadata.annotations["padding"] = "x" * 1_600_000
    errors = denied_in_both_modes(make_hook, library_opa.url, pod)
    assert "bytes of JSON, above max_pod_bytes = 1572864" in str(errors[0])
    size = int(str(errors[0]).split("the pod is ")[1].split(" bytes")[0])
    assert 1_600_000 < size < 1_610_000  # the compact JSON the hook sends


# -- pods that make the decision call fail: OPA healthy, so the pod is to blame ----------------------------


#: A response cap far below what an unclipped echo of the pods below would make (megabytes).
SMALL_RESPONSE = 64 * 1024


def policies_of(error: PodDenied) -> set[str | None]:
    return {message.policy for message in error.messages}


def test_padding_image_of_600000_brackets(library_opa, make_hook):
    """Finding 2a: a deny message echoing the image blew max_response_bytes; fail-open let it through.
    The library clips what a pod wrote before echoing it (lib/messages.rego): the decision on this pod
    fits a 64 KiB response (the echo alone would be 3.6 MB, OPA writing "<" as \\u003c), so the pod is
    judged by policy: denied for being privileged, the padded image named clipped in a warning."""
    pod = privileged(worker_pod())
    pod.spec.containers.append(k8s.V1Container(name="padding", image="evil.io/" + "<" * 600_000))
    for error in denied_in_both_modes(make_hook, library_opa.url, pod, max_response_bytes=SMALL_RESPONSE):
        assert policies_of(error) == {"deny_privileged", "pod_security"}, str(error)[:500]
        assert 'container "base" is privileged' in str(error)
    decision = make_hook(library_opa, max_response_bytes=SMALL_RESPONSE).evaluate(pod).decision
    (echo,) = [m for m in decision.warn if 'container "padding"' in m.msg]
    assert echo.policy == "image_tag" and "…[600008 characters]" in echo.msg and len(echo.msg) < 1024


def test_25000_host_path_volumes_in_one_megabyte(library_opa, make_hook):
    """OPA takes past the timeout on a 1 MB pod of volumes; it answers /health, so the pod is denied: by
    the timeout (the hook's own message), not by a policy (the pod is not privileged; deny_host_path would
    name the volumes had OPA finished). max_volumes is raised past the pod: at its default (256) the limit
    refuses the pod before OPA is asked (tests/test_limits.py)."""
    pod = worker_pod()
    pod.spec.volumes = [k8s.V1Volume(name=f"v{i}", host_path=k8s.V1HostPathVolumeSource(path="/")) for i in range(25_000)]
    assert len(as_json(pod)) < 1_572_864
    for error in denied_in_both_modes(make_hook, library_opa.url, pod, timeout=0.3, max_volumes=100_000):
        assert policies_of(error) == {"airflow-opa-mutation"}, str(error)[:500]  # the hook itself
        assert "OPA is healthy but could not decide on this pod" in str(error)
        assert "within timeout = 0.3s" in str(error)


def test_140000_capabilities(library_opa, make_hook):
    """140,000 added capabilities in a pod that is not privileged: the library names 20 and counts the
    rest (lib/messages.rego), so its answer fits a 64 KiB response and the pod is denied for its
    capabilities by policy, not for the size of the answer (a generous timeout keeps the deadline out)."""
    pod = worker_pod()
    pod.spec.containers[0].security_context = k8s.V1SecurityContext(
        capabilities=k8s.V1Capabilities(add=[f"c{i}" for i in range(140_000)])
    )
    for error in denied_in_both_modes(make_hook, library_opa.url, pod, max_response_bytes=SMALL_RESPONSE, timeout=60):
        assert policies_of(error) == {"deny_privileged", "pod_security"}, str(error)[:500]
        named = [m.msg for m in error.messages if m.policy == "deny_privileged"]
        assert len(named) == 21 and named[-1] == "... and 139980 more"
        assert all("which is not allowed" in msg for msg in named[:-1])
        (baseline,) = [m.msg for m in error.messages if m.policy == "pod_security"]
        assert "non-default capabilities" in baseline and len(baseline) < 1100


def test_an_oversized_response_names_the_cause(start_opa, make_hook):
    opa = start_opa(decision_policy('decision := {"warn": [concat("", ["x" | some _ in numbers.range(1, 5000)])]}'))
    (error,) = denied_in_both_modes(make_hook, opa.url, worker_pod(), max_response_bytes=1000)[:1]
    assert "OPA is healthy but could not decide on this pod" in str(error)
    assert "max_response_bytes = 1000" in str(error)


def test_200_containers_over_max_patch_ops_raise_in_both_modes(library_opa, make_hook):
    """Finding 2c: ~200 containers make the library's patch exceed max_patch_ops; that fails closed now,
    and a privileged one among them is denied (phase 2's denies are not lost)."""
    denied_in_both_modes(make_hook, library_opa.url, privileged(worker_pod(containers=200)), max_containers=300)
    pod = worker_pod(containers=200)
    before = as_json(pod)
    for mode in MODES:
        with pytest.raises(PatchRejected, match=r"ops exceed max_patch_ops = 1000"):
            make_hook(library_opa, fail_mode=mode, max_containers=300)(pod)
        assert as_json(pod) == before


def test_invalid_decision_raises_in_open_mode(start_opa, make_hook, pod):
    hook = make_hook(start_opa(decision_policy('decision := "not an object"')), fail_mode="open")
    with pytest.raises(InvalidDecision):
        hook(pod)


def test_only_an_unreachable_opa_fails_open(make_hook, pod, hook_log):
    hook = make_hook(f"http://127.0.0.1:{free_port()}", timeout=0.3, fail_mode="open")
    before = as_json(pod)
    hook(pod)
    assert as_json(pod) == before
    assert "OPA's /health failed too" in hook_log.text


def test_401_stays_unavailable_never_blamed_on_the_pod(start_opa, make_hook, pod, tmp_path):
    authz = tmp_path / "authz"
    authz.mkdir()
    (authz / "authz.rego").write_text('package system.authz\n\ndefault allow := false\n\nallow if input.identity == "good"\n\nallow if input.path == ["health"]\n')
    opa = start_opa(decision_policy("decision := {}"), paths=[authz], args=["--authentication=token", "--authorization=basic"])
    with pytest.raises(OpaUnavailable) as raised:
        make_hook(opa, token="bad")(pod)
    assert raised.value.status == 401
    make_hook(opa, token="bad", fail_mode="open")(pod)  # a credentials problem: fail_mode decides


# -- the breaker cannot be turned into a weapon ---------------------------------------------------------

SLOW_FOR_HOSTILE = decision_policy("""
    hostile if input.pod.metadata.labels.hostile == "yes"

    privileged if input.pod.spec.containers[0].securityContext.privileged == true

    # nine million iterations of nothing: well past the test's timeout, without building big arrays
    slow if {
        some i in numbers.range(1, 3000)
        some j in numbers.range(1, 3000)
        i * j == -1
    }

    decision := {"patch": []} if {
        hostile
        not slow
    }

    decision := {"deny": ["privileged container"]} if {
        not hostile
        privileged
    }

    decision := {"patch": [{"op": "add", "path": "/metadata/labels/seen", "value": "yes"}]} if {
        not hostile
        not privileged
    }
""")


def hostile_pod(i: int) -> k8s.V1Pod:
    pod = worker_pod(f"hostile-{i}")
    pod.metadata.labels["hostile"] = "yes"
    return pod


def other_dag_pod(name: str) -> k8s.V1Pod:
    pod = worker_pod(name)
    pod.metadata.labels["dag_id"] = pod.metadata.annotations["dag_id"] = "another_dag"
    return pod


@pytest.mark.parametrize("fail_mode", MODES)
def test_hostile_pods_never_open_the_breaker(start_opa, make_hook, fail_mode):
    """Finding 3: five padded pods opened the breaker for everyone for 30 s."""
    hook = make_hook(start_opa(SLOW_FOR_HOSTILE), timeout=0.3, fail_mode=fail_mode)
    for i in range(hook.settings.breaker_threshold + 3):
        with pytest.raises(PodDenied, match="OPA is healthy but could not decide on this pod"):
            hook(hostile_pod(i))
    clean = other_dag_pod("clean")
    hook(clean)
    assert clean.metadata.labels["seen"] == "yes"
    with pytest.raises(PodDenied, match="privileged container"):
        hook(privileged(other_dag_pod("privileged")))


def test_a_real_outage_still_opens_the_breaker(make_hook, pod, hook_log):
    hook = make_hook(f"http://127.0.0.1:{free_port()}", timeout=0.2, fail_mode="open", breaker_threshold=2)
    for _ in range(3):
        hook(worker_pod())
    assert "circuit breaker open" in hook_log.text


# -- trusted ids -----------------------------------------------------------------------------------------

ECHO = decision_policy("""
    decision := {"patch": [{"op": "add", "path": "/metadata/annotations/echo",  "value": json.marshal(input.airflow)}]}
""")


def test_ids_only_the_pod_vouches_for_are_marked_untrusted(start_opa, make_hook, pod):
    """Outside Airflow's construct_pod and any running task, labels and annotations are only claims."""
    make_hook(start_opa(ECHO))(pod)
    seen = json.loads(pod.metadata.annotations["echo"])
    assert seen["dag_id"] == "example_dag"
    assert set(seen["untrusted"]) >= {"dag_id", "task_id", "run_id", "try_number", "launcher"}


def test_kubernetes_pod_operator_label_wins_over_kubernetes_executor(start_opa, make_hook):
    pod = worker_pod(launcher="kubernetes_pod_operator")
    pod.metadata.labels["kubernetes_executor"] = "true"
    make_hook(start_opa(ECHO))(pod)
    assert json.loads(pod.metadata.annotations["echo"])["launcher"] == "kubernetes_pod_operator"


def test_a_spoofed_dag_id_gets_no_exemption(library_opa, make_hook):
    """Finding 1: annotations and labels dag_id=ops_debug matched the organisation's exemption."""
    pod = privileged(worker_pod())
    pod.metadata.labels["dag_id"] = pod.metadata.annotations["dag_id"] = "ops_debug"
    denied_in_both_modes(make_hook, library_opa.url, pod)


# -- hygiene ---------------------------------------------------------------------------------------------


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("str() of a hostile value")

    __repr__ = __str__


def _raising_label() -> k8s.V1Pod:
    pod = worker_pod()
    pod.metadata.labels["kubernetes_executor"] = Unprintable()  # in place: no model validation
    return pod


def _deeply_nested() -> k8s.V1Pod:
    pod = worker_pod()
    nested: Any = "bottom"
    for _ in range(100_000):
        nested = [nested]
    pod.metadata.labels["deep"] = nested
    return pod


def _cyclic() -> k8s.V1Pod:
    pod = worker_pod()
    loop: list[Any] = []
    loop.append(loop)
    pod.metadata.annotations["loop"] = loop
    return pod


@pytest.mark.parametrize("fail_mode", MODES)
@pytest.mark.parametrize(
    "make_pod",
    [_raising_label, _deeply_nested, _cyclic, lambda: k8s.ApiClient().sanitize_for_serialization(worker_pod())],
    ids=["str-raises", "deeply-nested", "cyclic", "dict-not-v1pod"],
)
def test_hostile_python_values_raise_only_typed_errors(start_opa, make_hook, fail_mode, make_pod):
    hook = make_hook(start_opa(decision_policy("decision := {}")), fail_mode=fail_mode)
    with pytest.raises(OpaMutationError) as raised:
        hook(make_pod())
    assert isinstance(raised.value, PatchRejected)


def test_a_newline_in_an_id_cannot_forge_a_log_line(start_opa, make_hook, hook_log):
    pod = worker_pod()
    forged = "etl\nopa_mutation mutated pod=airflow/innocent dag_id=ops_debug"
    pod.metadata.annotations["dag_id"] = forged
    pod.metadata.name = "name\rwith-cr"
    # Policy messages echo what DAG authors write (names, images): their line breaks are escaped too.
    policy = r'decision := {"deny": ["no\nopa_mutation forged"], "warn": ["w\ropa_mutation forged"]}'
    hook = make_hook(start_opa(decision_policy(policy)))
    with pytest.raises(PodDenied):
        hook(pod)
    assert hook_log.records
    for record in hook_log.records:
        text = record.getMessage()
        assert "\n" not in text and "\r" not in text, text
    assert "etl\\nopa_mutation" in hook_log.text and "no\\nopa_mutation forged" in hook_log.text


def test_dry_run_never_logs_env_values(start_opa, make_hook, hook_log, pod):
    pod.spec.containers[0].env.append(k8s.V1EnvVar(name="DB_PASSWORD", value="s3cr3t-from-the-dag"))
    pod.spec.containers[0].env_from = [k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name="vault-token"))]
    # every container kind: a redaction of regular containers alone would log these
    pod.spec.init_containers = [
        k8s.V1Container(name="init", image="busybox:1.36", env=[k8s.V1EnvVar(name="INIT_PASSWORD", value="init-s3cr3t")])
    ]
    pod.spec.ephemeral_containers = [
        k8s.V1EphemeralContainer(
            name="debug", image="busybox:1.36", env=[k8s.V1EnvVar(name="DEBUG_TOKEN", value="debug-s3cr3t")]
        )
    ]
    hook = make_hook(start_opa(decision_policy("""
        decision := {"patch": [
            {"op": "add", "path": "/spec/containers/0/env/-", "value": {"name": "API_KEY", "value": "injected-s3cr3t"}},
            {"op": "add", "path": "/spec/initContainers/0/env/-", "value": {"name": "I", "value": "injected-init"}},
            {"op": "add", "path": "/spec/ephemeralContainers/0/env/-", "value": {"name": "E", "value": "injected-eph"}},
            {"op": "add", "path": "/metadata/labels/team", "value": "data"},
        ]}
    """)), mode="dry-run")
    hook(pod)
    text = hook_log.text
    assert "would change" in text and '"team": "data"' in text
    secrets = ("s3cr3t-from-the-dag", "injected-s3cr3t", "DB_PASSWORD", "vault-token", "API_KEY")
    others = ("init-s3cr3t", "INIT_PASSWORD", "injected-init", "debug-s3cr3t", "DEBUG_TOKEN", "injected-eph")
    for secret in (*secrets, *others):
        assert secret not in text
    assert "<redacted: 2 entries, changed>" in text and "<redacted: 1 entries>" in text


def test_the_hook_module_never_lets_an_untyped_error_out(tmp_path: Path) -> None:
    """``pod_mutation_hook`` on a dict, with an unconfigured process-wide hook pointed nowhere."""
    import airflow_opa_mutation as aom
    from airflow_opa_mutation import hook as hook_module

    aom.configure(Settings(url=f"http://127.0.0.1:{free_port()}", fail_mode="open", timeout=0.2))
    try:
        with pytest.raises(PatchRejected):
            aom.pod_mutation_hook({"metadata": {"name": "x"}})
    finally:
        with hook_module._default_lock:
            current, hook_module._default = hook_module._default, None
        if current is not None:
            current.close()
