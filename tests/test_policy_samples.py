"""Every policy sample through the real hook and a real OPA serving policies/ (plus the sample's config).

A sample (policies/<name>/samples/*) holds the input pod, the Airflow context, the configuration delta it
needs, and the expected outcome of the whole library: the mutated pod, or the deny and warn messages.
Each is also checked for convergence: evaluating the mutated pod again yields no ops.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from airflow_opa_mutation import AUDIT_ANNOTATION, MutationHook, PodDenied, Settings, _pod_codec

REPO = Path(__file__).resolve().parents[1]
POLICIES = REPO / "policies"
SAMPLES = sorted(p for p in POLICIES.glob("*/samples/*") if p.is_file())


def test_every_policy_has_samples():
    folders = [p for p in POLICIES.iterdir() if (p / "policy.rego").exists()]
    assert len(folders) >= 15
    for folder in folders:
        assert len(list((folder / "samples").glob("*"))) >= 2, folder.name


def messages(entries):
    return sorted((m["policy"], m["msg"]) for m in entries or [])


@pytest.mark.parametrize("sample_path", SAMPLES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_sample(sample_path, library_opa, caplog):
    sample = yaml.safe_load(sample_path.read_text())
    expect = sample["expect"]
    opa = library_opa(sample.get("config") or {})
    hook = MutationHook(Settings(url=opa.url, audit_annotation=False))
    pod = _pod_codec.decode(sample["pod"])
    before = pod.to_dict()
    outcome = hook.evaluate(pod)
    try:
        caplog.set_level(logging.WARNING, logger="airflow_opa_mutation")
        if expect.get("deny"):
            with pytest.raises(PodDenied) as raised:
                hook(pod)
            assert sorted((m.policy, m.msg) for m in raised.value.messages) == messages(expect["deny"])
            assert pod.to_dict() == before
            return
        hook(pod)
        got_warn = sorted((m.policy, m.msg) for m in outcome.decision.warn) if outcome.decision else []
        assert got_warn == messages(expect.get("warn"))
        expected_pod = expect.get("pod", sample["pod"])
        assert _pod_codec.encode(pod) == expected_pod
        assert AUDIT_ANNOTATION not in (pod.metadata.annotations or {})
        # Convergence: the mutated pod, evaluated again, yields no ops.
        again = hook.evaluate(pod)
        assert again.error is None, again.error
        assert again.decision is not None
        assert [op.op for op in again.decision.patch] == []
    finally:
        hook.close()
