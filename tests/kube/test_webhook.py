"""The cluster backstop: the policy library as admission webhooks of a real kube-apiserver (v1.34.2), served
by a real OPA over TLS from policies/ itself (policies/lib/admission.rego, ``POST /v0/...``).

The webhooks are registered from ``airflow-opa-mutation admission manifests``' own output. Then, in
namespaces carrying the label it selects:

- every library sample is created twice: as the hook leaves it (hook → API server: admitted unchanged,
  with the hook's warnings; the convergence of the two layers) and as written, without the hook (mutated
  at admission into the pod the hook makes, or refused with the hook's own deny messages);
- privileged and hostPath pods are refused, also for a worker service account's own token
  (TokenRequest); the Airflow ids its labels claim buy it no exemption, unless the requester is one the
  configuration trusts, and no pod may run as that trusted account;
- an ephemeral container added through the ``ephemeralcontainers`` subresource is judged;
- a running pod's update (a worker's PATCH) is refused for what it newly violates: its image swapped for
  a refused registry's; a label update passes, also on a pod admitted under an older configuration;
- a Job whose pod template is privileged is refused at Job create, a clean one is stored mutated;
- OPA stopped: creation is refused in selected namespaces and untouched elsewhere.

The webhook's OPA takes each sample's configuration through its data API before the sample (the hook's
OPA is another one with the same configuration): one OPA, as one webhook URL, judges them all.
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from airflow_opa_mutation import AUDIT_ANNOTATION, MutationHook, PodDenied, Settings, pod_from_json, pod_to_json

from ..test_empty_values import api_decoded, with_empties
from ..test_pod_security_differential import REPLAY, SEED, hardened_pods, pods, say
from ..test_policy_samples import SAMPLES
from .cluster import ApiResult, ControlPlane, _warning_text
from .conftest import REPORT
from .test_admission import differences
from .webhook import SCHEDULER, audit_of, comparable
from .webhooks import WEBHOOKS, selected


def test_the_webhooks_are_registered_from_the_commands_output(webhook, kube_cluster):
    for document, plural in zip(webhook.documents, WEBHOOKS, strict=True):
        stored = kube_cluster.request("GET", f"/apis/admissionregistration.k8s.io/v1/{plural}/airflow-opa-mutation")
        assert stored.ok, stored
        [registered] = stored.body["webhooks"]
        [printed] = document["webhooks"]
        assert differences(printed, registered) == []
        assert registered["clientConfig"]["url"].startswith(webhook.opa.url + "/v0/data/airflow/pod/admission/")
    # server-side dry run of the same documents (kubectl apply --dry-run=server): valid as printed
    for document, plural in zip(webhook.documents, WEBHOOKS, strict=True):
        renamed = copy.deepcopy(document)
        renamed["metadata"]["name"] = "airflow-opa-mutation-dry-run"
        dry = kube_cluster.request("POST", f"/apis/admissionregistration.k8s.io/v1/{plural}", renamed, dryRun="All")
        assert dry.status == 201, dry


# -- every sample, through the hook and without it ---------------------------------------------------


def listed(messages: Any) -> str:
    return "; ".join(str(m) for m in messages)


def warnings_of(result: ApiResult) -> list[str]:
    return [w for w in result.warnings if w.startswith("[")]  # the library's "[policy] msg" (no PodSecurity here)


def slug(sample: Any) -> str:
    return re.sub(r"[^a-z0-9]+", "-", f"{sample.policy}-{sample.name.split('.')[0]}".lower()).strip("-")[:50]


# Where the two layers decide differently, by design, with the fields each difference is in.
DIFFERENT = {
    # The API server defaults imagePullPolicy (and an image volume's pullPolicy) before webhooks run
    # (IfNotPresent; Always for :latest or no tag): a policy that sets it only where absent finds it set
    # at admission.
    ("image_pull_policy", "01-set-where-absent.yaml.sample"): ("imagePullPolicy",),
    ("image_pull_policy", "04-image-volume.yaml.sample"): ("imagePullPolicy", "pullPolicy"),
}


def without(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        return {k: without(v, key) for k, v in value.items() if k != key}
    if isinstance(value, list):
        return [without(v, key) for v in value]
    return value


def through_hook(
    config: dict[str, Any], document: dict[str, Any], library_opa: Any
) -> tuple[Any, Any, tuple[Any, ...]]:
    """The real hook on ``document``: its outcome, the pod it leaves, and its deny messages (if it refused)."""
    hook = MutationHook(Settings(url=library_opa(config).url))
    try:
        pod = pod_from_json(document)
        outcome = hook.evaluate(pod_from_json(document))
        try:
            hook(pod)
        except PodDenied as exc:
            return outcome, pod, exc.messages
    finally:
        hook.close()
    return outcome, pod, ()


def alike_but(admitted: dict[str, Any], created: dict[str, Any], keys: tuple[str, ...]) -> None:
    """The two stored pods differ, only in ``keys`` (and so in the audit record's policies)."""
    assert comparable(admitted) != comparable(created)
    mine, theirs = (comparable(pod) for pod in (admitted, created))
    for key in keys:
        mine, theirs = without(mine, key), without(theirs, key)
    for pod in (mine, theirs):
        pod["metadata"].get("annotations", {}).pop(AUDIT_ANNOTATION, None)
    assert mine == theirs


@pytest.mark.parametrize("empties", [False, True], ids=["as-written", "with-empty-values"])
@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: f"{s.policy}/{s.name}")
def test_a_sample_is_decided_alike_by_the_hook_and_the_webhook(sample, empties, webhook, library_opa, kube_cluster):
    """``with-empty-values``: the sample's pod with empty lists and maps wherever it lacks the field
    (tests/test_empty_values.py), which the API server drops before the webhook sees the pod."""
    namespace = selected(kube_cluster, f"wh-{sample.document['pod']['metadata'].get('namespace', 'default')}")
    written = with_empties(sample.document["pod"]) if empties else copy.deepcopy(sample.document["pod"])
    written["metadata"]["namespace"] = namespace
    stem = f"{slug(sample)}-{'e' if empties else 'w'}"
    hooked, direct = copy.deepcopy(written), copy.deepcopy(written)
    hooked["metadata"]["name"], direct["metadata"]["name"] = f"{stem}-h", f"{stem}-d"
    outcome, pod, denied = through_hook(sample.config, hooked, library_opa)
    assert outcome.decision is not None, outcome.error
    webhook.configure(sample.config)
    kube_cluster.service_account(namespace, written["spec"].get("serviceAccount") or "default")  # the alias too
    expected_warnings = [str(m) for m in outcome.decision.warn]
    report = REPORT.setdefault("webhook", [])

    if denied:
        # Without the hook the pod is refused at admission with the hook's own messages.
        refused = kube_cluster.create_pod(namespace, direct)
        assert refused.status == 403, refused
        assert refused.message == (
            f'admission webhook "mutate.pods.airflow-opa-mutation" denied the request: '
            f"denied by policy: {listed(denied)}"
        )
        report.append((sample.policy, sample.name, empties, "denied by both"))
        return

    # Through the hook: admitted unchanged (no admission record, nothing lost), the same warnings.
    sent = pod_to_json(pod)
    created = kube_cluster.create_pod(namespace, sent)
    assert created.status == 201, created
    assert differences(api_decoded(sent), created.body) == []  # nothing lost but the empty maps it drops
    audit = audit_of(created.body)
    assert audit is None or audit["layer"] == "hook", audit
    assert warnings_of(created) == expected_warnings

    # Without the hook: mutated at admission into the pod the hook makes.
    admitted = kube_cluster.create_pod(namespace, direct)
    assert admitted.status == 201, admitted
    assert warnings_of(admitted) == expected_warnings
    different = DIFFERENT.get((sample.policy, sample.name))
    if different:
        alike_but(admitted.body, created.body, different)
        report.append((sample.policy, sample.name, empties, f"{'/'.join(different)} differs"))
        return
    record = audit_of(admitted.body)
    if outcome.changed:
        assert record is not None and record["layer"] == "admission", record
        assert record["policies"] == list(outcome.decision.policies)
    else:
        assert record is None
    assert comparable(admitted.body) == comparable(created.body)
    report.append((sample.policy, sample.name, empties, "admitted alike"))


# -- refused pods, worker tokens, trust -------------------------------------------------------------------


def bare_pod(name: str, **container: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "base", "image": "apache/airflow:3.3.2", **container}]},
    }


def token_for(kube: ControlPlane, namespace: str, account: str, verbs: tuple[str, ...] = ("create", "get")) -> str:
    """A service account's own token (TokenRequest), allowed ``verbs`` on pods and pod templates here."""
    kube.service_account(namespace, account)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "creator"},
        "rules": [{"apiGroups": ["", "batch"], "resources": ["pods", "jobs"], "verbs": list(verbs)}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": f"creator-{account}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "creator"},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    }
    for plural, body in (("roles", role), ("rolebindings", binding)):
        result = kube.request("POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/{plural}", body)
        assert result.ok or result.status == 409, result
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}}
    issued = kube.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token", request)
    assert issued.status == 201, issued
    return str(issued.body["status"]["token"])


def create_as(kube: ControlPlane, token: str, namespace: str, pod: dict[str, Any]) -> ApiResult:
    response = requests.post(
        f"{kube.url}/api/v1/namespaces/{namespace}/pods",
        json=pod,
        timeout=30,
        headers={"Authorization": f"Bearer {token}"},
        verify=str(kube.ca_file),
    )
    warnings = [_warning_text(w) for w in response.raw.headers.getlist("Warning")]
    return ApiResult(response.status_code, response.json(), warnings)


_PRIVILEGED = 'denied by policy: [deny_privileged] container "base" is privileged'
_HOST_PATH = '[deny_host_path] volume "host" mounts host path "/var/run/docker.sock"'


def test_privileged_and_host_path_pods_are_refused_for_admin_and_worker(webhook, kube_cluster):
    webhook.configure({})
    namespace = selected(kube_cluster, "wh-workers")
    worker = token_for(kube_cluster, namespace, "airflow-worker")
    host = bare_pod("host")
    host["spec"]["volumes"] = [{"name": "host", "hostPath": {"path": "/var/run/docker.sock"}}]
    for name, create in (
        ("admin", lambda p: kube_cluster.create_pod(namespace, p)),
        ("worker", lambda p: create_as(kube_cluster, worker, namespace, p)),
    ):
        privileged = create(bare_pod(f"privileged-{name}", securityContext={"privileged": True}))
        assert privileged.status == 403, privileged
        assert _PRIVILEGED in privileged.message
        mounted = create({**host, "metadata": {"name": f"host-{name}"}})
        assert mounted.status == 403, mounted
        assert _HOST_PATH in mounted.message
        plain = create(bare_pod(f"plain-{name}"))
        assert plain.status == 201, plain
        stored = plain.body["spec"]
        assert stored["automountServiceAccountToken"] is False and "volumes" not in stored
        assert stored["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert "volumeMounts" not in stored["containers"][0]
        assert audit_of(plain.body)["layer"] == "admission"  # type: ignore[index]


def test_claimed_ids_buy_an_exemption_only_for_a_trusted_requester(webhook, kube_cluster):
    webhook.configure({"exempt": {"etl": {"dag_id": "etl_*"}}})
    namespace = selected(kube_cluster, SCHEDULER[0])
    worker = token_for(kube_cluster, namespace, "airflow-worker")
    scheduler = token_for(kube_cluster, namespace, SCHEDULER[1])
    pod = bare_pod("exempted", securityContext={"privileged": True})
    pod["metadata"]["labels"] = {"dag_id": "etl_daily", "task_id": "load", "kubernetes_executor": "True"}
    pod["spec"]["serviceAccountName"] = "airflow-worker"
    refused = create_as(kube_cluster, worker, namespace, pod)
    assert refused.status == 403 and _PRIVILEGED in refused.message, refused
    admitted = create_as(kube_cluster, scheduler, namespace, pod)
    assert admitted.status == 201, admitted
    # ...and no judged pod may run as the trusted account, whoever asks
    as_scheduler = bare_pod("as-scheduler")
    as_scheduler["spec"]["serviceAccountName"] = SCHEDULER[1]
    for token in (worker, scheduler):
        denied = create_as(kube_cluster, token, namespace, as_scheduler)
        assert denied.status == 403, denied
        assert f'[admission] pod runs as service account "{SCHEDULER[1]}" of namespace "{SCHEDULER[0]}"' in (
            denied.message
        )


def patch_as(kube: ControlPlane, token: str, namespace: str, name: str, patch: dict[str, Any]) -> ApiResult:
    """A strategic merge patch of pod ``name`` (kubectl patch's default), as ``token``'s owner."""
    response = requests.patch(
        f"{kube.url}/api/v1/namespaces/{namespace}/pods/{name}",
        json=patch,
        timeout=30,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/strategic-merge-patch+json"},
        verify=str(kube.ca_file),
    )
    warnings = [_warning_text(w) for w in response.raw.headers.getlist("Warning")]
    return ApiResult(response.status_code, response.json(), warnings)


_REGISTRIES = {"policies": {"allowed_registries": {"enabled": True, "params": {"registries": ["docker.io/apache"]}}}}
_REFUSED_IMAGE = (
    '[allowed_registries] container "base" uses image "evil.example.net/payload:1" (evil.example.net/payload), '
    "which is not from an allowed registry"
)


def test_an_update_is_refused_for_what_it_newly_violates(webhook, kube_cluster):
    namespace = selected(kube_cluster, "wh-update")
    worker = token_for(kube_cluster, namespace, "airflow-worker", ("create", "get", "patch"))
    webhook.configure({})
    legacy = create_as(kube_cluster, worker, namespace, bare_pod("legacy", image="quay.io/acme/fetcher:1.4"))
    assert legacy.status == 201, legacy  # admitted before the registries were restricted
    webhook.configure(_REGISTRIES)
    assert create_as(kube_cluster, worker, namespace, bare_pod("compliant")).status == 201
    # the worker swaps the running pod's image for one the policies refuse
    swapped = {"spec": {"containers": [{"name": "base", "image": "evil.example.net/payload:1"}]}}
    refused = patch_as(kube_cluster, worker, namespace, "compliant", swapped)
    assert refused.status == 403, refused
    assert f"denied by policy: {_REFUSED_IMAGE}" in refused.message
    stored = kube_cluster.get_pod(namespace, "compliant").body
    assert [c["image"] for c in stored["spec"]["containers"]] == ["apache/airflow:3.3.2"]
    # label updates (the KubernetesPodOperator labels its finished pods) add no violation: allowed, also
    # on the pod an older configuration admitted
    for name in ("compliant", "legacy"):
        labelled = patch_as(
            kube_cluster, worker, namespace, name, {"metadata": {"labels": {"already_checked": "True"}}}
        )
        assert labelled.status == 200, labelled
        assert labelled.body["metadata"]["labels"]["already_checked"] == "True"
    # a spec change of the older pod is judged in full: its image is refused now
    deadline = patch_as(kube_cluster, worker, namespace, "legacy", {"spec": {"activeDeadlineSeconds": 3600}})
    assert deadline.status == 403, deadline
    assert '[allowed_registries] container "base" uses image "quay.io/acme/fetcher:1.4"' in deadline.message


# -- ephemeral containers and pod templates ---------------------------------------------------------------


def test_an_ephemeral_container_is_judged(webhook, kube_cluster):
    webhook.configure({})
    namespace = selected(kube_cluster, "wh-debug")
    assert kube_cluster.create_pod(namespace, bare_pod("debugged")).status == 201
    path = f"/api/v1/namespaces/{namespace}/pods/debugged/ephemeralcontainers"
    for debug, allowed in (({"privileged": True}, False), ({"allowPrivilegeEscalation": False}, True)):
        current = kube_cluster.get_pod(namespace, "debugged").body
        current["spec"]["ephemeralContainers"] = [
            {"name": f"debug-{int(allowed)}", "image": "busybox:1.36", "securityContext": debug}
        ]
        result = kube_cluster.request("PUT", path, current)
        if allowed:
            assert result.status == 200, result
            assert [c["name"] for c in result.body["spec"]["ephemeralContainers"]] == ["debug-1"]
        else:
            assert result.status == 403, result
            assert '[deny_privileged] ephemeralContainer "debug-0" is privileged' in result.message


def job(name: str, **container: Any) -> dict[str, Any]:
    template = {"spec": {"restartPolicy": "Never", **bare_pod(name, **container)["spec"]}}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": {"template": template}}


def test_a_job_with_a_privileged_template_is_refused_at_create(webhook, kube_cluster):
    webhook.configure({})
    namespace = selected(kube_cluster, "wh-jobs")
    refused = kube_cluster.request(
        "POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", job("privileged", securityContext={"privileged": True})
    )
    assert refused.status == 403, refused
    assert "the pod template (spec.template) is denied by policy: " + _PRIVILEGED.removeprefix(
        "denied by policy: "
    ) in (refused.message)
    created = kube_cluster.request("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", job("clean"))
    assert created.status == 201, created
    template = created.body["spec"]["template"]
    assert template["spec"]["automountServiceAccountToken"] is False
    assert template["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False
    assert audit_of(template)["layer"] == "admission"  # type: ignore[index]


# -- generated pods ----------------------------------------------------------------------------------------

GENERATED = int(os.environ.get("AOM_KUBE_WEBHOOK_PODS", "1000"))
BATCH = 25  # pods per hypothesis example


def _created(pod: dict[str, Any]) -> dict[str, Any]:
    pod["spec"].pop("ephemeralContainers", None)  # refused at creation: added later through the subresource
    return pod


# The differential's general pods (mostly refused) and its hardened ones (mostly admitted), half of them
# with empty lists and maps written in (which the API server drops).
generated_pods = st.one_of(pods(ephemeral=False), hardened_pods().map(_created))


@dataclass
class Convergence:
    pods: int = 0
    admitted: int = 0
    denied: int = 0
    invalid: int = 0  # refused by API validation both ways: the generator's pod itself is not valid
    disagreements: list[str] = field(default_factory=list)

    def disagree(self, what: str, pod: dict[str, Any], answer: Any) -> None:
        self.disagreements.append(f"{what}: {answer}\n  pod: {json.dumps(pod, sort_keys=True)}")


def converge(kube: ControlPlane, hook: MutationHook, namespace: str, generated: dict[str, Any], tally: Convergence):
    """One generated pod through the hook then the webhooks, and without the hook (dry runs)."""
    document = json.loads(json.dumps(generated))
    document["metadata"]["namespace"] = namespace
    kube.service_account(namespace, document["spec"].get("serviceAccount") or "default")
    outcome = hook.evaluate(pod_from_json(document))
    assert outcome.decision is not None, outcome.error
    tally.pods += 1
    direct = kube.create_pod(namespace, document, dry_run=True)
    if outcome.decision.deny:
        tally.denied += 1
        expected = f"denied by policy: {listed(outcome.decision.deny)}"
        if direct.status != 403 or not direct.message.endswith(expected):
            tally.disagree(f"denied by the hook ({expected}), without it the server said", document, direct)
        return
    pod = pod_from_json(document)
    hook(pod)
    sent = pod_to_json(pod)
    hooked = kube.create_pod(namespace, sent, dry_run=True)
    warnings = [str(m) for m in outcome.decision.warn]
    if hooked.status == 422 and direct.status == 422:
        tally.invalid += 1
    elif hooked.status != 201 or warnings_of(hooked) != warnings:
        tally.disagree("allowed by the hook, then", sent, hooked)
    elif (audit_of(hooked.body) or {}).get("layer") == "admission":
        # every admission patch carries the record: none means the webhook changed nothing (what the server's
        # decoding drops, "" and 0 of plain fields, a volume of a disabled feature, is no layer's doing)
        tally.disagree("changed at admission after the hook", sent, audit_of(hooked.body))
    elif direct.status != 201 or warnings_of(direct) != warnings:
        tally.disagree("allowed by the hook, without it", document, direct)
    elif comparable(direct.body) != comparable(hooked.body):
        tally.disagree("mutated differently at admission", document, json.dumps(direct.body, sort_keys=True))
    else:
        tally.admitted += 1


def test_generated_pods_are_decided_alike(webhook, library_opa, kube_cluster, request):
    """``AOM_KUBE_WEBHOOK_PODS`` (default 1,000) pods of the PSS differential's generators (its seed,
    ``AOM_PSS_SEED``, printed; half with empty values): after the hook, admitted unchanged with the same
    warnings; without it, stored as the hook would have sent them, or refused with the hook's messages."""
    webhook.configure({})
    namespace = selected(kube_cluster, "wh-generated")
    hook = MutationHook(Settings(url=library_opa({}).url))
    tally = Convergence()
    say(request, f"webhook convergence: {GENERATED} generated pods, seed {SEED} ({REPLAY})")
    started = time.monotonic()

    @seed(SEED)
    @settings(
        max_examples=-(-GENERATED // BATCH),
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(batch=st.lists(st.tuples(generated_pods, st.booleans()), min_size=BATCH, max_size=BATCH))
    def run(batch: list[tuple[dict[str, Any], bool]]) -> None:
        for generated, empties in batch:
            converge(kube_cluster, hook, namespace, with_empties(generated) if empties else generated, tally)

    try:
        run()
    finally:
        hook.close()
    REPORT["dry_run"].append(
        f"webhook convergence: {tally.pods} generated pods (seed {SEED}), {tally.admitted} admitted alike, "
        f"{tally.denied} denied by both, {tally.invalid} invalid both ways; {len(tally.disagreements)} disagreements; "
        f"{time.monotonic() - started:.0f} s"
    )
    assert tally.disagreements == [], f"{REPLAY}\n" + "\n".join(tally.disagreements[:20])
    assert tally.pods >= GENERATED


# -- OPA down: refused where selected, untouched elsewhere (keep this test last: it restarts OPA) --------


def test_opa_stopped_refuses_in_selected_namespaces_only(webhook, kube_cluster):
    judged = selected(kube_cluster, "wh-outage")
    elsewhere = selected(kube_cluster, "wh-unlabelled", labelled=False)
    webhook.opa.stop()
    try:
        refused = kube_cluster.create_pod(judged, bare_pod("during-outage"))
        assert refused.status == 500, refused
        assert 'failed calling webhook "mutate.pods.airflow-opa-mutation"' in refused.message
        assert kube_cluster.get_pod(judged, "during-outage").status == 404
        untouched = kube_cluster.create_pod(elsewhere, bare_pod("during-outage"))
        assert untouched.status == 201, untouched
        assert audit_of(untouched.body) is None and "automountServiceAccountToken" not in untouched.body["spec"]
    finally:
        webhook.opa.start()
        webhook.config = {}
        webhook.configure({})
    assert kube_cluster.create_pod(judged, bare_pod("after-outage")).status == 201
