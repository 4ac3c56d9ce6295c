"""The admission entry point builds ``input.airflow`` from the pod exactly as the hook does when Airflow
confirms nothing (``_airflow_context.airflow_context``): a differential on generated labels and
annotations, against a real OPA serving policies/. Every id is untrusted unless the requester is one the
configuration trusts; then the ids are what the hook's ``trust_pod`` gives.

The generator draws ASCII values (the Rego side parses integers over ASCII digits and whitespace only;
Python's ``int`` also takes other Unicode digits): printed seed, replayable with ``AOM_SEED``.
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
import requests

from airflow_opa_mutation._airflow_context import airflow_context

SEED = int(os.environ.get("AOM_SEED") or random.randrange(2**32))
SCHEDULER = "system:serviceaccount:airflow:airflow-scheduler"
KEYS = ("dag_id", "task_id", "run_id", "try_number", "map_index", "kubernetes_pod_operator", "kubernetes_executor")
VALUES = (
    "",
    "3",
    " 7 ",
    "\t2\n",
    "+4",
    "-1",
    "0012",
    "-0",
    "00",
    "1_000",
    "1__0",
    "_1",
    "1_",
    "1.0",
    "--1",
    "+-1",
    "x",
    "1 2",
    "True",
    "true",
    "TRUE",
    "tRuE",
    "false",
    "yes",
    "etl_daily",
    "ml.train",
    "a b",
    "scheduled__2026-11-24T00:00:00+00:00",
    "99999999999999999999",
)


def review(labels: dict[str, str], annotations: dict[str, str], username: str) -> dict[str, Any]:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": labels, "annotations": annotations},
        "spec": {"containers": [{"name": "base", "image": "busybox:1"}]},
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u",
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "airflow",
            "operation": "CREATE",
            "userInfo": {"username": username},
            "object": pod,
        },
    }


def generated(rng: random.Random) -> dict[str, str]:
    return {key: rng.choice(VALUES) for key in KEYS if rng.random() < 0.5}


@pytest.fixture(scope="module")
def opa(library_opa):
    return library_opa({"admission": {"trusted_requesters": [{"username": SCHEDULER}]}})


def admission_airflow(session: requests.Session, url: str, document: dict[str, Any]) -> Any:
    # /v0 as the API server calls it: the body is the input, the answer the document itself.
    response = session.post(f"{url}/v0/data/airflow/pod/admission/airflow", json=document, timeout=30)
    response.raise_for_status()
    return response.json()


def test_input_airflow_is_the_hooks_on_generated_pods(opa):
    print(f"seed {SEED} (AOM_SEED={SEED} replays it)")
    rng = random.Random(SEED)
    cases = [(generated(rng), generated(rng)) for _ in range(400)]
    cases += [({}, {}), ({"kubernetes_pod_operator": "True", "kubernetes_executor": "True"}, {})]
    seen: set[str] = set()
    with requests.Session() as session:
        session.trust_env = False
        for labels, annotations in cases:
            for username, trusted in (("aom-admin", False), (SCHEDULER, True)):
                got = admission_airflow(session, opa.url, review(labels, annotations, username))
                want = airflow_context(labels, annotations, trust_pod=trusted)
                assert got == want, (labels, annotations, username)
                seen.update(f"{key}={value}" for key, value in got.items() if key != "untrusted")
                seen.update(f"untrusted:{key}" for key in got.get("untrusted", []))
    # the generator reached every id, parsed integers of each sign, and every launcher
    assert {"try_number=1000", "map_index=-1", "map_index=0", "launcher=unknown"} <= seen
    assert {"launcher=kubernetes_pod_operator", "launcher=kubernetes_executor", "untrusted:launcher"} <= seen
    assert {f"untrusted:{key}" for key in ("dag_id", "task_id", "run_id", "try_number", "map_index")} <= seen


def test_every_claimed_id_is_untrusted_for_other_requesters(opa):
    labels = {
        "dag_id": "etl",
        "task_id": "load",
        "run_id": "r",
        "try_number": "1",
        "map_index": "2",
        "kubernetes_executor": "True",
    }
    with requests.Session() as session:
        session.trust_env = False
        got = admission_airflow(session, opa.url, review(labels, {}, "system:serviceaccount:airflow:worker"))
    assert got["untrusted"] == ["dag_id", "task_id", "run_id", "try_number", "map_index", "launcher"]
