"""TLS, mutual TLS and bearer tokens against OPA's own authentication and authorization.

Certificates come from a CA made for the test run; tokens are checked by a real ``system.authz``
policy. Failures must say what went wrong (a certificate problem, 401/403) without retrying, and a
token must never show up in a log record or an exception. "At once" and "within the timeout" are
checked through the client's own clock (tests/clientprobe.py), never with a stopwatch.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from airflow_opa_mutation import OpaUnavailable
from airflow_opa_mutation.cli._local_opa import LocalOpa, free_port

from ..clientprobe import ClientProbe
from ..conftest import decision_policy, worker_pod
from .certs import TestCA
from .conftest import LABEL_POLICY, call_denied, call_failing
from .faultproxy import Fault, TrickleRelay
from .figures import record

AUTHZ = """
package system.authz

default allow := false

# Liveness probes (LocalOpa.wait_healthy, the kubelet) carry no token.
allow if input.path == ["health"]

allow if {
    input.identity == data.tokens.decision
    input.method == "POST"
    input.path[0] == "v1"
    input.path[1] == "data"
}

allow if input.identity == data.tokens.admin
"""
ADMIN = "admin-7f3c9d1e2b"

# LocalOpa's liveness probe skips verification on purpose (it only waits for the port to serve).
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pki")
    ca = TestCA(folder, "ca")
    other = TestCA(folder, "other-ca")
    server = ca.issue("opa", dns=("localhost",), ips=("127.0.0.1",))
    wrong_host = ca.issue("elsewhere", dns=("opa.elsewhere.example",))
    client = ca.issue("airflow-scheduler", client=True)
    stranger = other.issue("stranger", client=True)
    both = folder / "client-with-key.pem"
    both.write_bytes(client.cert.read_bytes() + client.key.read_bytes())
    return {
        "ca": ca.cert_path, "other_ca": other.cert_path,
        "server_cert": server.cert, "server_key": server.key,
        "wrong_host_cert": wrong_host.cert, "wrong_host_key": wrong_host.key,
        "client_cert": client.cert, "client_key": client.key, "client_both": both,
        "stranger_cert": stranger.cert, "stranger_key": stranger.key,
    }


@pytest.fixture
def opa_server(tmp_path: Path) -> Iterator[Callable[..., LocalOpa]]:
    servers: list[LocalOpa] = []

    def start(files: dict[str, str], *, args: list[str], scheme: str = "http", wait: bool = True) -> LocalOpa:
        folder = tmp_path / f"opa-{len(servers)}"
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text)
        server = LocalOpa([folder], args=args, scheme=scheme)
        servers.append(server)
        return server.start(wait=wait)

    yield start
    for server in servers:
        server.stop()


def tls_args(pki: dict[str, Path], which: str = "server") -> list[str]:
    return ["--tls-cert-file", str(pki[f"{which}_cert"]), "--tls-private-key-file", str(pki[f"{which}_key"])]


def at_once(probe: ClientProbe, calls: int = 1) -> None:
    """The last ``calls`` decision calls each made one attempt: no retry, no back-off, no read cut short."""
    for call in probe.calls[-calls:]:
        assert (call.attempts, call.sleeps, call.fired) == (1, [], False), (call.attempts, call.sleeps, call.fired)


def bounded(probe: ClientProbe) -> None:
    """The last decision call ran under its one deadline, each health probe after it under its own, and
    it gave up only when no further attempt could end before the deadline."""
    call = probe.decision()
    call.assert_bounded()
    call.assert_gave_up_at_the_deadline()
    for health in probe.health:
        health.assert_bounded()


# -- TLS -------------------------------------------------------------------------------------------------


def test_tls_verified_with_ca_bundle(opa_server, make_hook, pki, pod):
    opa = opa_server(decision_policy(LABEL_POLICY), args=tls_args(pki), scheme="https")
    hook = make_hook(opa.url, ca_bundle=str(pki["ca"]))
    started = time.monotonic()
    hook(pod)
    elapsed = time.monotonic() - started
    assert pod.metadata.labels["seen"] == "yes"
    again = worker_pod("second")
    started = time.monotonic()
    hook(again)  # the TLS session is kept alive in the pool
    warm = time.monotonic() - started
    assert again.metadata.labels["seen"] == "yes"
    record("TLS", "first call (handshake)", elapsed)
    record("TLS", "second call (kept-alive connection)", warm)


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
@pytest.mark.parametrize(
    ("server", "bundle", "needle"),
    [
        ("server", "other_ca", "unable to get local issuer certificate"),
        ("wrong_host", "ca", "IP address mismatch"),
    ],
    ids=["wrong-ca", "wrong-host-name"],
)
def test_tls_certificate_problems(opa_server, make_hook, pki, pod, errors_log, client_probe, fail_mode, server, bundle,
                                  needle):
    opa = opa_server(decision_policy(LABEL_POLICY), args=tls_args(pki, server), scheme="https")
    hook = make_hook(opa.url, ca_bundle=str(pki[bundle]), fail_mode=fail_mode, timeout=2)
    elapsed, text = call_failing(hook, pod, fail_mode, errors_log, "TLS certificate problem")
    assert needle in text
    at_once(client_probe)  # not retried: a certificate does not get better in 2 s
    record(f"TLS {'wrong CA' if bundle == 'other_ca' else 'wrong host name'}", f"fails at once ({fail_mode})", elapsed)


def test_tls_without_ca_bundle_does_not_trust_the_test_ca(opa_server, make_hook, pki, pod):
    opa = opa_server(decision_policy(LABEL_POLICY), args=tls_args(pki), scheme="https")
    hook = make_hook(opa.url)
    before = pod.to_dict()
    with pytest.raises(OpaUnavailable, match="certificate"):
        hook(pod)
    assert pod.to_dict() == before


def _wait_mtls(opa: LocalOpa, pki: dict[str, Path]) -> None:
    """LocalOpa's probe has no client certificate; with --authentication=tls, probe with one."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            ok = requests.get(f"{opa.url}/health", timeout=0.5, verify=str(pki["ca"]),
                              cert=(str(pki["client_cert"]), str(pki["client_key"])))
            if ok.status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"OPA with mTLS did not become healthy:\n{opa.logs()}")


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
def test_mutual_tls(opa_server, make_hook, pki, errors_log, client_probe, fail_mode):
    opa = opa_server(decision_policy(LABEL_POLICY), scheme="https", wait=False,
                     args=[*tls_args(pki), "--authentication=tls", "--tls-ca-cert-file", str(pki["ca"])])
    _wait_mtls(opa, pki)
    common = {"ca_bundle": str(pki["ca"]), "fail_mode": fail_mode, "timeout": 2}
    ok = worker_pod("mtls-key-apart")
    make_hook(opa.url, client_cert=str(pki["client_cert"]), client_key=str(pki["client_key"]), **common)(ok)
    assert ok.metadata.labels["seen"] == "yes"
    both = worker_pod("mtls-key-together")
    make_hook(opa.url, client_cert=str(pki["client_both"]), **common)(both)  # cert and key in one file
    assert both.metadata.labels["seen"] == "yes"
    # No client certificate, or one from a CA OPA does not trust: refused in the handshake.
    for settings in ({}, {"client_cert": str(pki["stranger_cert"]), "client_key": str(pki["stranger_key"])}):
        refused = worker_pod("mtls-refused")
        elapsed, text = call_failing(make_hook(opa.url, **settings, **common), refused, fail_mode, errors_log, "OPA")
        assert "certificate" in text.lower() or "tls" in text.lower(), text
        at_once(client_probe)  # refused in the handshake: not retried to the deadline
        record("mTLS refused", f"{'no client cert' if not settings else 'cert from another CA'} ({fail_mode})",
               elapsed)


# -- bearer tokens -------------------------------------------------------------------------------------


def _token_opa(opa_server, decision_token: str) -> LocalOpa:
    files = {
        **decision_policy(LABEL_POLICY),
        "authz.rego": AUTHZ,
        "tokens.json": json.dumps({"tokens": {"decision": decision_token, "admin": ADMIN}}),
    }
    return opa_server(files, args=["--authentication=token", "--authorization=basic"])


def _rotate_in_opa(opa: LocalOpa, token: str) -> None:
    response = requests.put(f"{opa.url}/v1/data/tokens/decision", json=token, timeout=5,
                            headers={"Authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 204, response.text


def _assert_secret_absent(secret: str, caplog: pytest.LogCaptureFixture, *errors: BaseException) -> None:
    for rec in caplog.records:
        assert secret not in rec.getMessage(), rec.getMessage()
        assert secret not in repr(rec.args)
    for error in errors:
        rendered = "".join(traceback.format_exception(error))
        chain: BaseException | None = error
        while chain is not None:  # even the suppressed context (``raise ... from None``)
            rendered += repr(chain) + str(vars(chain))
            chain = chain.__context__
        assert secret not in rendered, rendered


def test_static_token(opa_server, make_hook, pod, errors_log):
    secret = "s3cr3t-decision-token-1"
    opa = _token_opa(opa_server, secret)
    hook = make_hook(opa.url, token=secret)
    hook(pod)
    assert pod.metadata.labels["seen"] == "yes"
    assert secret not in repr(hook.settings)
    _assert_secret_absent(secret, errors_log)


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
def test_wrong_token_is_401_not_retried_and_not_leaked(opa_server, make_hook, fault_proxy, pod, errors_log,
                                                       client_probe, fail_mode):
    opa = _token_opa(opa_server, "the-right-token")
    proxy = fault_proxy(opa.port)  # counts the requests that reach OPA
    wrong = "wr0ng-t0ken-do-not-log"
    hook = make_hook(proxy.url, token=wrong, fail_mode=fail_mode, timeout=2)
    errors_log.clear()
    error: BaseException | None = None
    elapsed, text = call_failing(hook, pod, fail_mode, errors_log, "HTTP 401")
    if fail_mode == "closed":  # once more, to hold the exception object itself
        try:
            hook(worker_pod("again"))
        except OpaUnavailable as exc:
            error = exc
        assert error is not None and error.status == 401
    assert "authentication failed" in text
    assert len(proxy.requests()) == (1 if fail_mode == "open" else 2)  # one request per call: no retry
    at_once(client_probe, calls=len(proxy.requests()))
    _assert_secret_absent(wrong, errors_log, *([error] if error else []))
    record("token: wrong token (401)", f"fails at once, 1 request ({fail_mode})", elapsed)


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
def test_403_is_reported_as_authorization_and_not_retried(fault_proxy, make_hook, pod, errors_log, client_probe,
                                                          fail_mode, opa_server):
    opa = _token_opa(opa_server, "t")
    body = b'{"code": "forbidden", "message": "request rejected by a gateway"}'
    proxy = fault_proxy(opa.port, default=Fault("status", status=403, body=body))
    secret = "tok-403-never-logged"
    hook = make_hook(proxy.url, token=secret, fail_mode=fail_mode, timeout=2)
    elapsed, text = call_failing(hook, pod, fail_mode, errors_log, "HTTP 403")
    assert "authorization failed" in text and "request rejected by a gateway" in text
    assert len(proxy.requests()) == 1
    at_once(client_probe)
    record("token: 403 from a gateway", f"fails at once, 1 request ({fail_mode})", elapsed)
    _assert_secret_absent(secret, errors_log)


def test_token_file_is_reread_when_rotated(opa_server, make_hook, tmp_path, errors_log):
    first, second, third = "rotation-token-AAAA", "rotation-token-BBBBBB", "rotation-token-CCCCCC"
    opa = _token_opa(opa_server, first)
    token_file = tmp_path / "token"
    token_file.write_text(first + "\n")
    hook = make_hook(opa.url, token_file=str(token_file), timeout=2)
    pod = worker_pod("rotation-1")
    hook(pod)
    assert pod.metadata.labels["seen"] == "yes"
    # Rotate: OPA first, then the file rewritten in place (a different length).
    _rotate_in_opa(opa, second)
    stale = make_hook(opa.url, token=first, timeout=2)
    with pytest.raises(OpaUnavailable) as old:
        stale(worker_pod("stale"))
    assert old.value.status == 401  # the old token really is dead now
    token_file.write_text(second + "\n")
    pod = worker_pod("rotation-2")
    hook(pod)  # the same hook picks up the new token without a restart
    assert pod.metadata.labels["seen"] == "yes"
    # Rotate again the way the kubelet updates a mounted secret: a new file renamed over the old one,
    # this time with a token of the same length.
    _rotate_in_opa(opa, third)
    staged = tmp_path / "token.new"
    staged.write_text(third)
    os.replace(staged, token_file)
    pod = worker_pod("rotation-3")
    hook(pod)
    assert pod.metadata.labels["seen"] == "yes"
    _assert_secret_absent(first, errors_log, old.value)
    for token in (second, third):
        _assert_secret_absent(token, errors_log)


def test_token_file_vanishing_is_unavailable(make_hook, tmp_path, pod, opa_server):
    opa = _token_opa(opa_server, "t")
    token_file = tmp_path / "token"
    token_file.write_text("t")
    hook = make_hook(opa.url, token_file=str(token_file))
    token_file.unlink()  # the secret mount went away after start-up
    before = pod.to_dict()
    with pytest.raises(OpaUnavailable, match="cannot read token_file"):
        hook(pod)
    assert pod.to_dict() == before


def test_logging_at_debug_everywhere_never_shows_the_token(opa_server, make_hook, pod, errors_log):
    """urllib3 logs at DEBUG; with every logger at DEBUG the token still appears nowhere."""
    secret = "debug-visible-token-xyz"
    opa = _token_opa(opa_server, secret)
    logging.getLogger().setLevel(logging.DEBUG)
    hook = make_hook(opa.url, token=secret)
    hook(pod)
    hook.client.require_bundles()  # GET /health?bundles=true with the token, through the same pool
    assert errors_log.records, "DEBUG capture is on"
    _assert_secret_absent(secret, errors_log)


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
def test_tls_slow_policy_is_bounded_by_timeout(opa_server, make_hook, fault_proxy, pki, errors_log, client_probe,
                                               fail_mode):
    """The deadline holds over TLS too (the watchdog shuts a TLS socket down like a plain one)."""
    slow = fault_proxy(free_port(), default=Fault("hang"), hold=10)
    policy = decision_policy(f"""
        decision := {{"patch": []}} if {{
            http.send({{"method": "get", "url": "http://127.0.0.1:{slow.port}/", "timeout": "5s", "raise_error": false}})
        }}
    """)
    opa = opa_server(policy, args=tls_args(pki), scheme="https")
    hook = make_hook(opa.url, ca_bundle=str(pki["ca"]), timeout=0.5, fail_mode=fail_mode)
    # OPA answers /health over the same TLS pool: the pod is to blame, in both modes (issue 13)
    elapsed, _ = call_denied(hook, worker_pod("tls-slow"), "within timeout = 0.5s")
    bounded(client_probe)
    record("TLS, slow policy (5 s)", f"call failed ({fail_mode}, timeout 0.5)", elapsed)


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
def test_token_file_with_a_line_break_is_typed_and_not_leaked(opa_server, make_hook, tmp_path, pod, errors_log,
                                                              client_probe, fail_mode):
    """A secret file holding two lines used to escape as a bare ValueError quoting the whole token."""
    opa = _token_opa(opa_server, "t")
    token_file = tmp_path / "token"
    token_file.write_text("first-line\nSECOND-LINE-SECRET\n")
    hook = make_hook(opa.url, token_file=str(token_file), fail_mode=fail_mode)
    errors_log.clear()
    _, text = call_failing(hook, pod, fail_mode, errors_log, "characters an HTTP header cannot carry")
    assert "SECOND-LINE-SECRET" not in text and "first-line" not in text
    _assert_secret_absent("SECOND-LINE-SECRET", errors_log)
    call = client_probe.decision()
    assert call.requests == [] and call.attempts == 1 and not call.sleeps  # refused before anything was sent


def test_static_token_with_a_line_break_is_a_config_error_without_the_token(make_hook, opa_server):
    from airflow_opa_mutation import ConfigError

    opa = _token_opa(opa_server, "t")
    with pytest.raises(ConfigError) as raised:
        make_hook(opa.url, token="abc\r\nX-Injected: SECRET-PART")
    assert "SECRET-PART" not in "".join(traceback.format_exception_only(raised.value)) + repr(vars(raised.value))
    assert raised.value.__context__ is None
    assert "token" in str(raised.value)


@pytest.mark.parametrize("fail_mode", ["closed", "open"])
def test_trickled_tls_handshake_is_bounded_by_timeout(opa_server, make_hook, pki, errors_log, client_probe, fail_mode):
    """OPA's TLS handshake relayed a byte every 50 ms: no socket read times out, the deadline must."""
    opa = opa_server(decision_policy(LABEL_POLICY), args=tls_args(pki), scheme="https")
    relay = TrickleRelay(opa.port, delay=0.05)
    try:
        hook = make_hook(f"https://127.0.0.1:{relay.port}", ca_bundle=str(pki["ca"]), timeout=0.5,
                         fail_mode=fail_mode)
        elapsed, _ = call_failing(hook, worker_pod("tls-trickle"), fail_mode, errors_log, "timeout = 0.5s")
    finally:
        relay.stop()
    bounded(client_probe)  # the call, then the health probe (through the relay too), each under its deadline
    record("TLS handshake trickled (1 B / 50 ms)", f"call failed ({fail_mode}, timeout 0.5)", elapsed)
