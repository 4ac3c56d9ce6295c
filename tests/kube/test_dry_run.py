"""The PSS differential's generated pods, after the hook, through a real API server (``dryRun=All``).

tests/test_pod_security_differential.py proves pod_security agrees with Kubernetes' Pod Security code on
thousands of generated pods. This sends a sample of the same generator's pods (imported, not copied) to
the API server itself, once with the shipped configuration (pod_security enforces baseline) into a
namespace enforcing baseline, once with ``enforce: restricted`` into one enforcing restricted:

- every pod the hook lets through is accepted: neither API validation (422: the library turned a valid
  pod into an invalid one) nor PodSecurity admission (403) refuses it;
- every pod pod_security denies would have been refused: the pod the hook would have sent gets a 403
  from PodSecurity at that level. Most name exactly pod_security's reasons; the others differ only by
  what the server's defaulting changes before admission judges the pod (it syncs the AppArmor
  annotations and fields both ways), counted in the summary. Denials by other policies only are stricter
  by design (none so far: pod_security denies whatever they deny among these pods).

Server-side dry run validates and admits without storing, so one pod name serves every request.
``AOM_KUBE_DRY_RUN_PODS`` (default 500) sets the number of pods per level; the generator's seed is the
differential's (``AOM_PSS_SEED``, printed), so a run replays with it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from airflow_opa_mutation import MutationHook, PodDenied, Settings, pod_from_json, pod_to_json
from airflow_opa_mutation.cli.verify import would_be

from ..test_pod_security_differential import REPLAY, SEED, pods, say
from .cluster import ControlPlane
from .conftest import REPORT
from .test_admission import RESTRICTED, aggregated

PODS = int(os.environ.get("AOM_KUBE_DRY_RUN_PODS", "500"))
BATCH = 25  # pods per hypothesis example


@dataclass
class Tally:
    pods: int = 0
    created: int = 0
    denied_pod_security: int = 0
    same_reasons: int = 0
    denied_other: int = 0
    disagreements: list[str] = field(default_factory=list)

    def disagree(self, what: str, pod: dict[str, Any], answer: Any) -> None:
        self.disagreements.append(f"{what}: {answer}\n  pod: {json.dumps(pod, sort_keys=True)}")


def judge(kube: ControlPlane, hook: MutationHook, namespace: str, level: str, generated: dict[str, Any], tally: Tally):
    """One generated pod through the hook, then the server (dry run), at ``level``."""
    document = json.loads(json.dumps(generated))
    document["metadata"]["namespace"] = namespace
    outcome = hook.evaluate(pod_from_json(document))
    assert outcome.decision is not None, outcome.error
    tally.pods += 1
    if not outcome.decision.deny:
        pod = pod_from_json(document)
        hook(pod)
        sent = pod_to_json(pod)
        answer = kube.create_pod(namespace, sent, dry_run=True)
        tally.created += answer.status == 201
        if answer.status != 201:
            tally.disagree(f"allowed by the hook, refused at {level}", sent, answer)
        return
    with pytest.raises(PodDenied):
        hook(pod_from_json(document))
    ours = [m.msg for m in outcome.decision.deny if m.policy == "pod_security"]
    if not ours:
        tally.denied_other += 1
        return
    tally.denied_pod_security += 1
    would = would_be(hook, outcome)
    assert would is not None
    answer = kube.create_pod(namespace, would, dry_run=True)
    expected = f'pods "{document["metadata"]["name"]}" is forbidden: ' + aggregated(
        ours, f'violates PodSecurity "{level}:latest"'
    )
    tally.same_reasons += answer.message == expected
    if answer.status != 403 or f'is forbidden: violates PodSecurity "{level}:latest": ' not in answer.message:
        tally.disagree(f"denied by pod_security at {level} ({expected}), the server said", would, answer)


@pytest.mark.parametrize("level", ["baseline", "restricted"])
def test_generated_pods_after_the_hook_are_admitted_exactly(
    level: str, library_opa, kube_cluster: ControlPlane, request: pytest.FixtureRequest
):
    namespace = f"dry-run-{level}"
    kube_cluster.namespace(namespace, enforce=level)
    hook = MutationHook(Settings(url=library_opa({} if level == "baseline" else RESTRICTED).url))
    tally = Tally()
    say(request, f"dry run at {level}: {PODS} generated pods, seed {SEED} ({REPLAY})")
    started = time.monotonic()

    @seed(SEED)
    @settings(
        max_examples=-(-PODS // BATCH),
        database=None,
        deadline=None,
        phases=[Phase.generate],  # no shrinking: every disagreement is reported with its pod below
        suppress_health_check=list(HealthCheck),
    )
    @given(batch=st.lists(pods(ephemeral=False), min_size=BATCH, max_size=BATCH))
    def run(batch: list[dict[str, Any]]) -> None:
        for generated in batch:
            judge(kube_cluster, hook, namespace, level, generated, tally)

    try:
        run()
    finally:
        hook.close()
    seconds = time.monotonic() - started
    REPORT["dry_run"].append(
        f"dry run at {level}: {tally.pods} generated pods (seed {SEED}), {tally.created} admitted, "
        f"{tally.denied_pod_security} denied by pod_security and refused by the server ({tally.same_reasons} "
        f"naming the same reasons), {tally.denied_other} denied "
        f"by other policies; {len(tally.disagreements)} disagreements; {seconds:.0f} s"
    )
    assert tally.disagreements == [], f"{REPLAY}\n" + "\n".join(tally.disagreements)
    assert tally.pods >= PODS
