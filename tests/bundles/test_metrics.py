"""OPA's /metrics on the diagnostic port, from a sidecar started the production way, against what the alerts
in deploy/monitoring/prometheus-rules.yaml read (issue 25, item 12).

1. every OPA series the rules name exists in a real scrape, with the labels they use;
2. the signals mean what the alerts say: a healthy sidecar shows none of them; a bundle it refuses (signed
   with a key it does not trust) counts a failed load whose message the rule's pattern calls a refusal
   (OpaBundleRefused), and a bundle service that is gone one it calls a transport error; both leave the
   last request newer than the last successful one (OpaBundleNotUpdated); the activation series names
   the revision served, and only that one: a new revision replaces it (OpaBundleRevisionSkew).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import requests
import yaml

from airflow_opa_mutation.cli._local_opa import free_port

from ..conftest import REPO
from .conftest import BUNDLE, MAX_DELAY, RESOURCE, wait_active, wait_until

RULES = REPO / "deploy" / "monitoring" / "prometheus-rules.yaml"
#: The names OPA exports (a hook counter, airflow_opa_mutation_*, never matches: "opa_" follows "_" there).
OPA_NAME = re.compile(r"\b(?:last_[a-z_]+|bundle_[a-z_]+|plugin_[a-z_]+|opa_[a-z_]+)\b")
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def scrape(url: str) -> list[Sample]:
    """The Prometheus text format, as OPA serves it (the classic format: no OpenMetrics negotiated)."""
    response = requests.get(url, timeout=5)
    response.raise_for_status()
    samples = []
    for line in response.text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        labels = dict(_LABEL.findall(match.group(2) or ""))
        samples.append(Sample(match.group(1), labels, float(match.group(3))))
    return samples


def one(samples: list[Sample], name: str) -> Sample:
    found = [s for s in samples if s.name == name and s.labels.get("name") == BUNDLE]
    assert len(found) == 1, (name, found)
    return found[0]


def active_in(samples: list[Sample], revision: str) -> list[Sample] | None:
    """``samples`` if the bundle's one activation series names ``revision`` (an old one's is gone)."""
    found = [s for s in samples if s.name == "last_success_bundle_activation" and s.labels.get("name") == BUNDLE]
    return samples if [s.labels.get("active_revision") for s in found] == [revision] else None


def rule_expressions() -> list[str]:
    document = yaml.safe_load(RULES.read_text())
    return [rule["expr"] for group in document["spec"]["groups"] for rule in group["rules"]]


def test_every_opa_series_the_alerts_read_is_in_a_real_scrape(start_sidecar, bundle_server, make_bundle):
    diagnostic = free_port()
    bundle_server.publish(RESOURCE, make_bundle("rev-1"))
    opa = start_sidecar(extra_args=(f"--diagnostic-addr=127.0.0.1:{diagnostic}",))
    wait_active(opa, "rev-1")
    url = f"http://127.0.0.1:{diagnostic}/metrics"  # the port podmonitor.yaml scrapes
    samples = wait_until(lambda: active_in(scrape(url), "rev-1"), 5, "rev-1 in the metrics")
    exported = {s.name for s in samples}
    used = {name for expr in rule_expressions() for name in OPA_NAME.findall(expr)}
    failures = "bundle_failed_load_counter"  # exported from the first failed load on (the next test)
    assert used == {"last_success_bundle_activation", "last_bundle_request", "last_success_bundle_request",
                    failures}, used
    assert used - {failures} <= exported, f"not exported by OPA: {sorted(used - {failures} - exported)}"
    for name in used - {failures}:  # every OPA series the rules read is per bundle: selected by name="airflow"
        assert any(s.labels.get("name") == BUNDLE for s in samples if s.name == name), name


def transport_pattern() -> re.Pattern[str]:
    """The rule's pattern for OPA's download errors (PromQL regexes are anchored: fullmatch)."""
    [expr] = [e for e in rule_expressions() if "bundle_failed_load_counter" in e]
    match = re.search(r'message!~"([^"]*)"', expr)
    assert match, expr
    return re.compile(match.group(1))


def failed_loads(samples: list[Sample]) -> dict[str, float]:
    return {s.labels["message"]: s.value for s in samples
            if s.name == "bundle_failed_load_counter" and s.labels.get("name") == BUNDLE}


def test_the_signals_mean_what_the_alerts_say(start_sidecar, bundle_server, make_bundle, keys):
    transport = transport_pattern()
    diagnostic = free_port()
    url = f"http://127.0.0.1:{diagnostic}/metrics"
    bundle_server.publish(RESOURCE, make_bundle("rev-1"))
    opa = start_sidecar(extra_args=(f"--diagnostic-addr=127.0.0.1:{diagnostic}",))
    wait_active(opa, "rev-1")

    # Healthy: the last request succeeded, nothing refused.
    samples = wait_until(lambda: active_in(scrape(url), "rev-1"), 5, "rev-1 in the metrics")
    activation = one(samples, "last_success_bundle_activation")
    assert activation.value > 0
    assert one(samples, "last_bundle_request").value == one(samples, "last_success_bundle_request").value
    assert not [m for m in failed_loads(samples) if not transport.fullmatch(m)]

    def behind(samples: list[Sample]) -> bool:
        return one(samples, "last_bundle_request").value > one(samples, "last_success_bundle_request").value

    # A new revision replaces the old one's series: the skew rule counts what is served, not what was.
    bundle_server.publish(RESOURCE, make_bundle("rev-2"))
    wait_active(opa, "rev-2")
    wait_until(lambda: active_in(scrape(url), "rev-2"), 5, "only rev-2 in the metrics")

    # A bundle signed with a key the sidecar does not trust: refused, rev-2 keeps serving.
    bundle_server.publish(RESOURCE, make_bundle("rev-3", signing_key=keys.other_private))

    def refused() -> list[Sample] | None:
        now = scrape(url)
        return now if [m for m in failed_loads(now) if not transport.fullmatch(m)] and behind(now) else None

    samples = wait_until(refused, MAX_DELAY + 8, "a refused bundle counted as a refusal, the request as failed")
    [message] = [m for m in failed_loads(samples) if not transport.fullmatch(m)]
    assert "signature" in message, message
    assert active_in(samples, "rev-2")

    # The bundle service gone: a transport error, and still no successful request.
    bundle_server.stop()

    def unreachable() -> list[Sample] | None:
        now = scrape(url)
        return now if [m for m in failed_loads(now) if m.startswith("request failed: ")] and behind(now) else None

    samples = wait_until(unreachable, MAX_DELAY + 8, "an unreachable service counted as a transport error")
    assert [m for m in failed_loads(samples) if m.startswith("request failed: ") and transport.fullmatch(m)]
    assert active_in(samples, "rev-2")
