"""``doctor``: the effective configuration with origins, and a checklist with a fix for each failure."""

from __future__ import annotations

import textwrap

import pytest
import requests

from airflow_opa_mutation import Settings
from airflow_opa_mutation._opa_endpoint import opa_endpoint
from airflow_opa_mutation._version import MIN_OPA_VERSION
from airflow_opa_mutation.cli._doctor_checks import older_than_minimum
from airflow_opa_mutation.cli._local_opa import LocalOpa, free_port
from airflow_opa_mutation.cli._opa_admin import admin_client
from airflow_opa_mutation.cli.doctor import PINNED_OPA

from ..conftest import REPO
from ..reliability.certs import TestCA
from .conftest import LIBRARY, parse


def checks(document):
    return {c["name"]: c for c in document["checks"]}


def test_a_healthy_local_opa(run, schema_validator):
    result = run("doctor", "--policies", str(LIBRARY), "-o", "json")
    assert result.exit_code == 0, result.output
    document = parse(result)
    schema_validator(document)
    found = checks(document)
    for name in ("configuration", "reachable", "opa version", "decision", "bundles"):
        assert found[name]["status"] == "ok", found[name]
    assert document["facts"]["opa_version"] == PINNED_OPA
    assert document["facts"]["decision"]["policies"] == ["team_label", "token_off"]


def test_kubernetes_pod_operator_use_asks_for_an_admission_backstop(run, library_server):
    """Where the KubernetesPodOperator can run, its pods are judged inside the task's process (DAG code can
    bypass the hook): doctor says Pod Security Admission must back it (docs/threat-model.md)."""
    import importlib.util

    result = run("doctor", "-o", "json", env={"AIRFLOW__OPA_MUTATION__URL": library_server.url})
    found = checks(parse(result))["kpo_backstop"]
    try:
        kpo_installed = importlib.util.find_spec("airflow.providers.cncf.kubernetes.operators.pod") is not None
    except ImportError:
        kpo_installed = False
    if kpo_installed:  # the airflow environment
        assert found["status"] == "warn", found
        assert "bypass" in found["detail"]
        assert "pod-security.kubernetes.io/enforce" in found["fix"]
    else:  # kubernetes 37 without Airflow: nothing but the scheduler builds pods
        assert found["status"] == "ok", found
    assert result.exit_code == 0, result.output


def test_configuration_origins_and_a_running_opa(run, library_server):
    env = {"AIRFLOW__OPA_MUTATION__URL": library_server.url, "AIRFLOW__OPA_MUTATION__FAIL_MODE": "open",
           "AIRFLOW__OPA_MUTATION__TOKEN": "not-shown"}
    result = run("doctor", "-o", "json", env=env)
    document = parse(result)
    assert result.exit_code == 0, result.output
    origins = {row["key"]: (row["value"], row["origin"]) for row in document["configuration"]}
    assert origins["url"] == (library_server.url, "env")
    assert origins["fail_mode"] == ("open", "env")
    assert origins["token"] == ("<set>", "env")  # never printed
    assert origins["timeout"] == (None, "default")
    found = checks(document)
    assert found["fail_mode"]["status"] == "warn" and found["fail_mode"]["fix"]
    assert found["tls"]["detail"] == "plain HTTP on loopback (an OPA sidecar)"


def test_text_checklist(run, library_server):
    result = run("doctor", "--url", library_server.url, "--color", "never")
    assert result.exit_code == 0
    assert "effective configuration ([opa_mutation])" in result.stdout
    assert f"[ ok ] opa version: OPA {PINNED_OPA} (the pinned version)" in result.stdout
    assert "all checks passed" in result.stdout


def test_unreachable_opa_fails_with_a_fix(run):
    url = f"http://127.0.0.1:{free_port()}"
    result = run("doctor", "--url", url, "--color", "never")
    assert result.exit_code == 1
    assert f"[FAIL] reachable: no answer from {url}" in result.stdout
    assert "fix: start OPA beside Airflow" in result.stdout


def test_undefined_decision_fails_with_a_fix(run, start_opa):
    opa = start_opa({"other.rego": "package somewhere.else\n\nx := 1\n"})
    document = parse(run("doctor", "--url", opa.url, "-o", "json"))
    assert document["exit_code"] == 1
    decision = checks(document)["decision"]
    assert decision["status"] == "fail" and "undefined" in decision["detail"]
    assert "decision_path" in decision["fix"]


def test_a_bad_value_names_the_key_and_where_to_fix_it(run):
    result = run("doctor", "-o", "json", env={"AIRFLOW__OPA_MUTATION__TIMEOUT": "soon"})
    assert result.exit_code == 1
    configuration = checks(parse(result))["configuration"]
    assert configuration["status"] == "fail" and "timeout" in configuration["detail"]
    assert "AIRFLOW__OPA_MUTATION__TIMEOUT" in configuration["fix"]


SHIPPED_AUTHZ = REPO / "deploy" / "opa" / "authz.rego"

AUTHZ = textwrap.dedent("""\
    package system.authz

    import rego.v1

    default allow := false

    allow if input.path == ["health"]

    # The hook's token reads anything and writes nothing (doctor fails an OPA that accepts its writes).
    allow if {
        input.identity == "s3cret"
        not input.method in {"PUT", "PATCH", "DELETE"}
    }
""")


@pytest.fixture
def token_opa(start_opa):
    return start_opa({"authz.rego": AUTHZ}, paths=[LIBRARY], args=["--authentication=token", "--authorization=basic"])


def test_token_auth_accepted(run, token_opa):
    document = parse(run("doctor", "--url", token_opa.url, "-o", "json", env={"AIRFLOW__OPA_MUTATION__TOKEN": "s3cret"}))
    assert document["exit_code"] == 0, document["checks"]
    assert checks(document)["auth"]["status"] == "ok"


def test_token_missing_is_an_auth_failure(run, token_opa):
    document = parse(run("doctor", "--url", token_opa.url, "-o", "json"))
    assert document["exit_code"] == 1
    auth = checks(document)["auth"]
    assert auth["status"] == "fail" and "401" in auth["detail"] and "token" in auth["fix"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    ca = TestCA(folder, "ca")
    server = ca.issue("opa", dns=("localhost",), ips=("127.0.0.1",))
    client = ca.issue("airflow-scheduler", client=True)
    return {"ca": ca.cert_path, "cert": server.cert, "key": server.key,
            "client_cert": client.cert, "client_key": client.key}


def _tls(pki) -> list[str]:
    return ["--tls-cert-file", str(pki["cert"]), "--tls-private-key-file", str(pki["key"])]


LOCKED = ["--authorization=basic"]  # with SHIPPED_AUTHZ: OPA's API as shipped (no writes)


@pytest.fixture
def tls_opa(pki):
    with LocalOpa([LIBRARY, SHIPPED_AUTHZ], scheme="https", args=[*_tls(pki), *LOCKED]) as opa:
        yield opa


def _ca_env(pki, **more: str) -> dict[str, str]:
    return {"AIRFLOW__OPA_MUTATION__CA_BUNDLE": str(pki["ca"]), **more}


def test_tls_verified_with_the_ca_bundle(run, tls_opa, pki):
    document = parse(run("doctor", "--url", tls_opa.url, "-o", "json", env=_ca_env(pki)))
    assert document["exit_code"] == 0, document["checks"]
    found = checks(document)
    assert found["tls"]["detail"] == f"HTTPS, server certificate verified with {pki['ca']}"
    assert found["reachable"]["status"] == found["bundles"]["status"] == found["decision"]["status"] == "ok"


def test_tls_with_an_unknown_ca_fails_with_a_fix(run, tls_opa):
    document = parse(run("doctor", "--url", tls_opa.url, "-o", "json"))
    assert document["exit_code"] == 1
    reachable = checks(document)["reachable"]
    assert reachable["status"] == "fail" and "TLS handshake" in reachable["detail"]
    assert "ca_bundle" in reachable["fix"]


@pytest.fixture
def mtls_opa(pki):
    """OPA that authenticates clients by certificate (--authentication=tls): only ours gets in."""
    args = [*_tls(pki), "--authentication=tls", "--tls-ca-cert-file", str(pki["ca"]), *LOCKED]
    opa = LocalOpa([LIBRARY, SHIPPED_AUTHZ], scheme="https", args=args).start(wait=False)
    settings = Settings(url=opa.url, ca_bundle=str(pki["ca"]), client_cert=str(pki["client_cert"]),
                        client_key=str(pki["client_key"]))
    with admin_client(opa_endpoint(settings), timeout=1) as admin:  # LocalOpa's own probe has no certificate
        admin.wait_for_ready(timeout=30, interval=0.05, diagnostic_url=f"{opa.url}/health")
    yield opa
    opa.stop()


def test_mutual_tls(run, mtls_opa, pki):
    env = _ca_env(pki, AIRFLOW__OPA_MUTATION__CLIENT_CERT=str(pki["client_cert"]),
                  AIRFLOW__OPA_MUTATION__CLIENT_KEY=str(pki["client_key"]))
    document = parse(run("doctor", "--url", mtls_opa.url, "-o", "json", env=env))
    assert document["exit_code"] == 0, document["checks"]
    found = checks(document)
    assert found["tls"]["detail"] == f"HTTPS, server certificate verified with {pki['ca']}, client certificate sent"
    assert found["reachable"]["status"] == found["bundles"]["status"] == found["decision"]["status"] == "ok"
    assert document["facts"]["decision"]["policies"] == ["team_label", "token_off"]


def test_mutual_tls_without_a_client_certificate_fails(run, mtls_opa, pki):
    document = parse(run("doctor", "--url", mtls_opa.url, "-o", "json", env=_ca_env(pki)))
    assert document["exit_code"] == 1
    reachable = checks(document)["reachable"]
    assert reachable["status"] == "fail", reachable
    assert "decision" not in checks(document)  # nothing else can be asked


@pytest.fixture
def tls_token_opa(pki, tmp_path):
    (tmp_path / "authz").mkdir()
    (tmp_path / "authz" / "authz.rego").write_text(AUTHZ)
    args = [*_tls(pki), "--authentication=token", "--authorization=basic"]
    with LocalOpa([tmp_path / "authz", LIBRARY], scheme="https", args=args) as opa:
        yield opa


def test_token_file_over_tls(run, tls_token_opa, pki, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    document = parse(run("doctor", "--url", tls_token_opa.url, "-o", "json",
                         env=_ca_env(pki, AIRFLOW__OPA_MUTATION__TOKEN_FILE=str(token_file))))
    assert document["exit_code"] == 0, document["checks"]
    found = checks(document)
    assert found["auth"] == {"name": "auth", "status": "ok", "detail": "the bearer token is accepted", "fix": None}
    assert found["tls"]["status"] == found["bundles"]["status"] == "ok"


def test_an_unusable_token_file_is_an_auth_failure(run, library_server, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("two\nlines")  # not a header value: read by the same code as the hook's
    document = parse(run("doctor", "--url", library_server.url, "-o", "json",
                         env={"AIRFLOW__OPA_MUTATION__TOKEN_FILE": str(token_file)}))
    assert document["exit_code"] == 1
    auth = checks(document)["auth"]
    assert auth["status"] == "fail" and str(token_file) in auth["detail"] and "token_file" in auth["fix"]
    assert "two" not in auth["detail"]  # never the secret


def test_doctor_says_the_kill_switch_is_on(run, library_server):
    """``mode = off`` (issue 25, item 13): doctor warns that the hook does nothing, and how to turn it back on."""
    env = {"AIRFLOW__OPA_MUTATION__URL": library_server.url, "AIRFLOW__OPA_MUTATION__MODE": "off"}
    found = checks(parse(run("doctor", "-o", "json", env=env)))["mode"]
    assert found["status"] == "warn", found
    assert "mode = off" in found["detail"] and "not evaluated" in found["detail"]
    assert "enforce" in found["fix"]


# -- OPA's API: writes and version (issue 25) --------------------------------------------------------------

def test_an_opa_that_accepts_writes_fails(run, start_opa):
    """Task code on the sidecar's loopback can write to an OPA without system.authz: doctor says so, and
    leaves nothing behind (its probe document is deleted again)."""
    opa = start_opa(paths=[LIBRARY])
    result = run("doctor", "--url", opa.url, "-o", "json")
    assert result.exit_code == 1, result.output
    writes = checks(parse(result))["writes"]
    assert writes["status"] == "fail" and writes["detail"].startswith("OPA accepts writes"), writes
    assert "--authorization=basic" in writes["fix"] and "deploy/opa/authz.rego" in writes["fix"]
    left = requests.get(f"{opa.url}/v1/data/airflow_opa_mutation_doctor_probe", timeout=5).json()
    assert "result" not in left, left


def test_the_shipped_authorization_passes_every_check(run, start_opa):
    """deploy/opa/authz.rego allows every read-only request doctor makes, and refuses its write."""
    opa = start_opa(paths=[LIBRARY, SHIPPED_AUTHZ], args=["--authorization=basic"])
    result = run("doctor", "--url", opa.url, "-o", "json")
    document = parse(result)
    assert result.exit_code == 0, document["checks"]
    found = checks(document)
    assert found["writes"] == {"name": "writes", "status": "ok", "fix": None,
                               "detail": "OPA refuses writes (PUT /v1/data/...: HTTP 401)"}
    for name in ("reachable", "opa version", "decision", "policy configuration", "bundles"):
        assert found[name]["status"] == "ok", found[name]
    assert requests.put(f"{opa.url}/v1/data/x", json={}, timeout=5).status_code == 401


def test_a_decision_path_the_shipped_authorization_does_not_list_is_refused_with_a_fix(run, library_server):
    env = {"AIRFLOW__OPA_MUTATION__DECISION_PATH": "airflow/pod/other"}
    result = run("doctor", "--url", library_server.url, "-o", "json", env=env)
    assert result.exit_code == 1
    auth = checks(parse(result))["auth"]
    assert auth["status"] == "fail" and "401" in auth["detail"], auth
    assert "add airflow/pod/other to its decision_paths" in auth["fix"]


def test_the_local_opa_of_policies_is_not_asked_to_write(run):
    found = checks(parse(run("doctor", "--policies", str(LIBRARY), "-o", "json")))
    assert found["writes"]["status"] == "skip"


@pytest.mark.parametrize(("version", "old"), [
    ("1.21.3", False), ("1.22.3", False), ("1.21.10", False), ("2.0.0", False), ("1.22.0-dev", False),
    ("1.21.2", True), ("1.9.9", True), ("0.70.0", True), ("1.21.3-rc1", True), ("v1.21.2", True),
])
def test_the_minimum_opa_version_comparison(version, old):
    assert older_than_minimum(version) is old
    assert MIN_OPA_VERSION == "1.21.3"


def test_an_unreadable_version_is_a_warning():
    assert older_than_minimum("main") is None


def test_the_real_opa_is_new_enough(run, library_server):
    found = checks(parse(run("doctor", "--url", library_server.url, "-o", "json")))["opa version"]
    assert found == {"name": "opa version", "status": "ok", "detail": f"OPA {PINNED_OPA} (the pinned version)", "fix": None}
