"""Every policy sample through ``verify``'s own checker, against a real OPA serving policies/ (plus the sample's
config), the way ``airflow-opa-mutation verify`` runs them: one checker, so the test and the command cannot
drift apart.

A sample (policies/<name>/samples/*) holds the input pod, the Airflow context, the configuration delta it
needs, and the expected outcome of the whole library: the deny and warn lists and the mutated pod, which
must converge (evaluating it again yields no ops). Beyond the checker, each sample also goes through the
hook's enforce path, which must do what ``evaluate`` said.
"""

from __future__ import annotations

import pytest

from airflow_opa_mutation import PodDenied, _pod_codec
from airflow_opa_mutation.cli._opa_provider import OpaProvider
from airflow_opa_mutation.cli.verify import Sample, check, discover

from .conftest import POLICIES

SAMPLES = discover(POLICIES)


def test_every_policy_has_samples():
    folders = [p for p in POLICIES.iterdir() if (p / "policy.rego").exists()]
    assert len(folders) >= 15
    for folder in folders:
        assert len(list((folder / "samples").glob("*"))) >= 2, folder.name


@pytest.fixture(scope="module")
def provider():
    """One real OPA per distinct configuration delta, shared by the samples that use it (as in verify)."""
    with OpaProvider(policies=POLICIES, audit_annotation=False) as opa:
        yield opa


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: f"{s.policy}/{s.name}")
def test_sample(sample: Sample, provider):
    hook = provider.hook(sample.config)
    result = check(sample, hook)
    assert result.problems == [], "\n".join([*result.problems, *result.diff])
    assert result.status == "pass"
    outcome = result.outcome
    assert outcome is not None and outcome.decision is not None
    # The enforce path does what evaluate said: a denied pod is left exactly as it was, any other
    # becomes the evaluated pod.
    pod = _pod_codec.decode(sample.document["pod"])
    if outcome.decision.deny:
        with pytest.raises(PodDenied):
            hook(pod)
        assert _pod_codec.encode(pod) == sample.document["pod"]
    else:
        assert result.converged is True
        hook(pod)
        assert _pod_codec.encode(pod) == outcome.after
