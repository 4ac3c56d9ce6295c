"""A real OPA sidecar, configured with deploy/opa/config.yaml, polling a real bundle server on loopback.

1. it loads the signed bundle; the hook applies its policies and reports its revision;
2. a new revision is picked up without a restart, within the polling interval (measured);
3. a bundle with a bad signature or a tampered file is refused and the previous revision keeps serving;
   with no revision ever activated, OPA is not ready and the hook fails per fail_mode.
"""

from __future__ import annotations

import io
import json
import logging
import re
import statistics
import tarfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from airflow_opa_mutation import InvalidDecision, OpaUnavailable
from airflow_opa_mutation.hook import AUDIT_ANNOTATION

from .conftest import (
    BUNDLE,
    MAX_DELAY,
    MIN_DELAY,
    RESOURCE,
    active_revision,
    bundles_ready,
    injected_marker,
    opa_status,
    record,
    secret_pod,
    wait_active,
    wait_until,
)


def _decide(opa, params: str = "provenance=true") -> dict:
    pod = {"metadata": {"name": "p", "namespace": "airflow"}, "spec": {"containers": [{"name": "base", "image": "x:1"}]}}
    response = requests.post(f"{opa.url}/v1/data/airflow/pod/decision?{params}", json={"input": {"pod": pod}}, timeout=5)
    response.raise_for_status()
    return response.json()


# -- 1. the signed bundle is loaded and applied --------------------------------------------------------------


def test_sidecar_loads_the_signed_bundle_and_opa_reports_its_revision(start_sidecar, bundle_server, make_bundle,
                                                                       make_hook):
    bundle_server.publish(RESOURCE, make_bundle("rev-1"))
    opa = start_sidecar()
    wait_active(opa, "rev-1")
    assert bundles_ready(opa) == 200

    body = _decide(opa)
    assert body["provenance"]["bundles"][BUNDLE]["revision"] == "rev-1"
    assert body["result"]["patch"], "the bundle's policies decide"

    pod = secret_pod()
    make_hook(opa)(pod)
    env = {e.name: e.value for e in pod.spec.containers[0].env}
    assert env["POLICY_REVISION"] == "rev-1", "the organisation's config from the bundle is applied"
    assert pod.spec.containers[0].security_context.allow_privilege_escalation is False  # shipped defaults too


def test_hook_reports_the_bundle_revision(start_sidecar, bundle_server, make_bundle, make_hook, hook_log):
    bundle_server.publish(RESOURCE, make_bundle("rev-1"))
    opa = start_sidecar()
    wait_active(opa, "rev-1")
    hook = make_hook(opa)  # Settings(url=opa.url): provenance is on by default

    outcome = hook.evaluate(secret_pod())
    assert outcome.error is None, outcome.error
    assert outcome.decision is not None
    assert outcome.decision.provenance["bundles"][BUNDLE]["revision"] == "rev-1"

    pod = secret_pod("audited")
    hook(pod)
    lines = [r.getMessage() for r in hook_log.records if r.levelno == logging.INFO and "opa_mutation mutated" in r.getMessage()]
    assert lines and f"revision={BUNDLE}@rev-1" in lines[-1]
    audit = json.loads(pod.metadata.annotations[AUDIT_ANNOTATION])
    assert audit["revision"] == f"{BUNDLE}@rev-1"


# -- 2. a new revision, no restart -------------------------------------------------------------------------


def test_new_revision_is_picked_up_without_restart_within_the_polling_interval(start_sidecar, bundle_server,
                                                                                make_bundle, make_hook):
    bundle_server.publish(RESOURCE, make_bundle("rev-1"))
    opa = start_sidecar()
    pid = opa.process.pid
    wait_active(opa, "rev-1")
    hook = make_hook(opa)
    assert injected_marker(hook.evaluate(secret_pod()).after) == "rev-1"

    delays, activations = [], []
    for revision in ("rev-2", "rev-3", "rev-4", "rev-5", "rev-6"):
        built = make_bundle(revision)  # built before the clock starts: we measure OPA, not the builder
        published = bundle_server.publish(RESOURCE, built)
        published_wall = time.time()
        seen = wait_until(
            lambda revision=revision: injected_marker(hook.evaluate(secret_pod()).after) == revision,
            timeout=MAX_DELAY + 5,
            what=f"the hook sees {revision}",
            interval=0.01,
        )
        assert seen
        delay = time.monotonic() - published
        delays.append(delay)
        # Picked up at the next poll: what OPA fetched since publishing (the bundle server's own log), up
        # to the download that brought the new revision, is at most one poll that raced the publish.
        served = [code for when, _, code in list(bundle_server.requests) if when >= published]
        assert 200 in served and len(served[: served.index(200)]) <= 1, served
        wait_until(lambda revision=revision: active_revision(opa) == revision, 2, "status shows the revision")
        activated = _wall(opa_status(opa)["bundles"][BUNDLE]["last_successful_activation"])
        activations.append(activated - published_wall)
        print(f"{revision}: the hook's decisions changed {delay:.3f}s after publishing")
    assert opa.process is not None and opa.process.pid == pid, "OPA was not restarted"
    assert opa.process.poll() is None

    # Polling waits a random delay in [min, max] between downloads; a download and activation take ms.
    test = "new revision -> hook behaviour"
    record(test, f"pickup delay min (polling {MIN_DELAY}-{MAX_DELAY} s)", min(delays))
    record(test, f"pickup delay median (polling {MIN_DELAY}-{MAX_DELAY} s)", statistics.median(delays))
    record(test, f"pickup delay max (polling {MIN_DELAY}-{MAX_DELAY} s)", max(delays))
    record(test, "publish -> OPA activated, median (OPA's status)", statistics.median(activations))
    record(test, "OPA activated -> hook's next decision changed, median",
           statistics.median(d - a for d, a in zip(delays, activations, strict=True)))
    status = opa_status(opa)["bundles"][BUNDLE]
    record(test, "bundle download+activation (OPA's timers)",
           sum(v for k, v in status["metrics"].items() if k.startswith("timer_")) / 1e9)
    # Unchanged bundles cost a 304: OPA sends If-None-Match with the ETag it got.
    unchanged_since = time.monotonic()
    wait_until(lambda: bundle_server.served_since(unchanged_since, 304) >= 1, MAX_DELAY + 3, "a 304 poll")


def test_a_restarted_sidecar_serves_its_persisted_revision_while_the_bundle_service_is_down(
    start_sidecar, bundle_server, make_bundle, make_hook, keys
):
    """deploy/opa/config.yaml persists activated bundles: a sidecar restarted while the bundle service
    is unreachable comes back with its last revision (re-verified: a changed key refuses it)."""
    bundle_server.publish(RESOURCE, make_bundle("rev-1"))
    opa = start_sidecar()
    wait_active(opa, "rev-1")
    opa.stop()
    bundle_server.stop()

    opa.start()
    wait_active(opa, "rev-1", timeout=5)
    assert bundles_ready(opa) == 200
    assert injected_marker(make_hook(opa).evaluate(secret_pod()).after) == "rev-1"
    assert "connection refused" in opa_status(opa)["bundles"][BUNDLE]["message"]
    opa.stop()

    untrusting = start_sidecar(public_key=keys.other_public)  # same persistence directory, other key
    wait_until(lambda: "Failed to load bundle from disk" in untrusting.logs(), 5, "persisted bundle refused")
    assert "verification error" in untrusting.logs()
    assert bundles_ready(untrusting) != 200


def _wall(stamp: str) -> float:
    """OPA's RFC 3339 timestamp (nanoseconds, Z) as a Unix time."""
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$", stamp)
    assert match, stamp
    fraction = float(f"0.{match.group(2)}") if match.group(2) else 0.0
    return datetime.fromisoformat(match.group(1)).replace(tzinfo=UTC).timestamp() + fraction


# -- 3. refusing bad bundles -------------------------------------------------------------------------------


def _repack(source: Path, change) -> bytes:
    """The bundle tarball with ``change(members)`` applied and its .signatures.json kept as it was."""
    with tarfile.open(source, "r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    change(members)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _deny_everything(members: dict[str, bytes]) -> None:
    name = next(n for n in members if n.endswith("lib/decision.rego"))
    members[name] = members[name].replace(b"deny := framework.deny", b'deny := [{"msg": "tampered", "policy": "x"}]')
    assert b"tampered" in members[name]


def _add_policy(members: dict[str, bytes]) -> None:
    members["/evil/policy.rego"] = b"package airflow.pod.evil\n\nx := 1\n"


def _change_config(members: dict[str, bytes]) -> None:
    data = json.loads(members["/data.json"])
    data["airflow"]["pod"]["config"]["policies"]["env_injection"]["params"]["env"]["POLICY_REVISION"] = "forged"
    members["/data.json"] = json.dumps(data).encode()


BAD_BUNDLES = {
    "signed-by-an-untrusted-key": (lambda make, keys: make("rev-2", signing_key=keys.other_private).read_bytes(),
                                   "verification error"),
    "signed-with-an-unknown-key-id": (lambda make, keys: make("rev-2", key_id="someone_else").read_bytes(),
                                      "verification key corresponding to ID someone_else not found"),
    "unsigned": (lambda make, keys: make("rev-2", unsigned=True).read_bytes(), "missing .signatures.json"),
    "tampered-policy-file": (lambda make, keys: _repack(make("rev-2"), _deny_everything), "digest mismatch"),
    "tampered-config-data": (lambda make, keys: _repack(make("rev-2"), _change_config), "digest mismatch"),
    "file-added-after-signing": (lambda make, keys: _repack(make("rev-2"), _add_policy),
                                 "not included in bundle signature"),
}


@pytest.mark.parametrize("case", list(BAD_BUNDLES))
def test_bad_bundle_is_refused_and_the_previous_revision_keeps_serving(case, start_sidecar, bundle_server,
                                                                       make_bundle, keys, make_hook, collector):
    bundle_server.publish(RESOURCE, make_bundle("rev-1"))
    opa = start_sidecar()
    wait_active(opa, "rev-1")
    hook = make_hook(opa)

    build, error = BAD_BUNDLES[case]
    bad = build(make_bundle, keys)
    published = bundle_server.publish(RESOURCE, bad)
    wait_until(lambda: bundle_server.served_since(published) >= 1, MAX_DELAY + 3, "OPA downloaded the bad bundle")
    wait_until(lambda: error in opa.logs(), 5, f"OPA logs {error!r}:\n{opa.logs()[-3000:]}")

    assert active_revision(opa) == "rev-1"
    status = opa_status(opa)["bundles"][BUNDLE]
    assert status["code"] == "bundle_error"
    assert error in status["message"] or any(error in str(e) for e in status.get("errors", [])), status
    assert bundles_ready(opa) == 200, "a revision is active: OPA stays ready"
    outcome = hook.evaluate(secret_pod())
    assert outcome.error is None
    assert injected_marker(outcome.after) == "rev-1"
    assert not (outcome.decision and outcome.decision.deny)
    # The remote status service hears about it too.
    collector.wait_for(
        lambda c: any(s.get("bundles", {}).get(BUNDLE, {}).get("code") == "bundle_error"
                      and s["bundles"][BUNDLE].get("active_revision") == "rev-1" for s in c.statuses),
    )

    # Publishing a good revision again recovers without a restart.
    bundle_server.publish(RESOURCE, make_bundle("rev-3"))
    wait_active(opa, "rev-3")
    assert injected_marker(hook.evaluate(secret_pod()).after) == "rev-3"


def _never_activated(start_sidecar, bundle_server, make_bundle, keys):
    published = bundle_server.publish(RESOURCE, make_bundle("rev-1", signing_key=keys.other_private))
    opa = start_sidecar()
    wait_until(lambda: bundle_server.served_since(published) >= 1, MAX_DELAY + 3, "OPA tried the bundle")
    wait_until(lambda: "verification error" in opa.logs(), 5, "OPA refused the bundle")
    assert active_revision(opa) is None
    return opa


def test_with_no_revision_ever_activated_opa_is_not_ready_and_the_decision_is_undefined(
    start_sidecar, bundle_server, make_bundle, keys, make_hook
):
    opa = _never_activated(start_sidecar, bundle_server, make_bundle, keys)
    ready = requests.get(f"{opa.url}/health?bundles=true", timeout=2)
    assert ready.status_code != 200
    assert "not activated" in ready.text
    assert requests.get(f"{opa.url}/health", timeout=2).status_code == 200, "alive, but not ready"

    # Without the readiness check the hook still fails closed: the decision path is undefined.
    pod = secret_pod()
    before = pod.to_dict()
    with pytest.raises(InvalidDecision, match="undefined"):
        make_hook(opa)(pod)
    assert pod.to_dict() == before


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
def test_hook_requiring_bundles_fails_per_fail_mode_until_a_revision_is_active(
    fail_mode, start_sidecar, bundle_server, make_bundle, keys, make_hook, hook_log
):
    opa = _never_activated(start_sidecar, bundle_server, make_bundle, keys)
    hook = make_hook(opa, require_bundles=True, fail_mode=fail_mode)
    pod = secret_pod()
    before = pod.to_dict()
    if fail_mode == "closed":
        with pytest.raises(OpaUnavailable, match="not activated its bundle"):
            hook(pod)
    else:
        hook(pod)
        errors = [r.getMessage() for r in hook_log.records if r.levelno == logging.ERROR]
        assert any("not activated its bundle" in e for e in errors), errors
    assert pod.to_dict() == before

    # A good revision arrives: the hook recovers without being rebuilt.
    bundle_server.publish(RESOURCE, make_bundle("rev-2"))
    wait_active(opa, "rev-2")
    deadline = time.monotonic() + 10
    while True:
        pod = secret_pod()
        try:
            hook(pod)
        except OpaUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
            continue
        if injected_marker({"spec": {"containers": [{"name": "base", "env": [
                {"name": e.name, "value": e.value} for e in pod.spec.containers[0].env]}]}}) == "rev-2":
            break
        assert time.monotonic() < deadline, "the hook never applied rev-2"
        time.sleep(0.2)
