"""The Kubernetes oracle answers like Kubernetes: verdicts and messages checked against the libraries' output.

Later differential tests trust this binary as the reference, so these pin what it says on well-known cases.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from .k8s_oracle import K8sOracle, OracleMissing

HEX = "0123456789abcdef" * 4
ALLOWED = {"allowed": True, "forbidden": []}


@pytest.fixture(scope="module")
def oracle() -> K8sOracle:
    return K8sOracle()


def pod(spec: dict[str, Any], container: dict[str, Any] | None = None) -> dict[str, Any]:
    """A one-container pod with ``container`` merged into its ``base`` container."""
    base = {"name": "base", "image": "nginx", **(container or {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {**spec, "containers": [base]}}


RESTRICTED = pod(
    {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}},
    {"securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}},
)


def reasons(answer: dict[str, Any]) -> list[str]:
    return [f["reason"] for f in answer["forbidden"]]


def test_version_names_the_pins_and_what_latest_means(oracle: K8sOracle) -> None:
    v = oracle.version()
    assert v["k8s.io/pod-security-admission"] == "v0.34.2"
    assert v["k8s.io/api"] == v["k8s.io/apimachinery"] == "v0.34.2"
    assert v["github.com/distribution/reference"] == "v0.6.0"
    assert (v["latest"], v["latestEvaluatesAs"]) == ("latest", "v1.34")


def test_restricted_compliant_pod_is_allowed_at_both_levels(oracle: K8sOracle) -> None:
    assert oracle.pod_security([RESTRICTED]) == [{"baseline": ALLOWED, "restricted": ALLOWED}]


def test_privileged_container_is_forbidden_at_baseline(oracle: K8sOracle) -> None:
    privileged = copy.deepcopy(RESTRICTED)
    privileged["spec"]["containers"][0]["securityContext"]["privileged"] = True
    [answer] = oracle.pod_security([privileged])
    forbidden = [{"reason": "privileged", "detail": 'container "base" must not set securityContext.privileged=true'}]
    assert answer == {
        "baseline": {"allowed": False, "forbidden": forbidden},
        "restricted": {"allowed": False, "forbidden": forbidden},
    }


def test_host_port_is_forbidden_at_baseline(oracle: K8sOracle) -> None:
    [answer] = oracle.pod_security([pod({}, {"ports": [{"containerPort": 80, "hostPort": 8080}]})])
    assert answer["baseline"] == {
        "allowed": False,
        "forbidden": [{"reason": "hostPort", "detail": 'container "base" uses hostPort 8080'}],
    }
    # Restricted repeats the baseline checks first, then its own, in the library's order.
    assert reasons(answer["restricted"]) == [
        "hostPort",
        "allowPrivilegeEscalation != false",
        "unrestricted capabilities",
        "runAsNonRoot != true",
        "seccompProfile",
    ]


def test_pod_level_unconfined_seccomp_fails_even_when_the_container_overrides_it(oracle: K8sOracle) -> None:
    unconfined = copy.deepcopy(RESTRICTED)
    unconfined["spec"]["securityContext"]["seccompProfile"] = {"type": "Unconfined"}
    unconfined["spec"]["containers"][0]["securityContext"]["seccompProfile"] = {"type": "RuntimeDefault"}
    [answer] = oracle.pod_security([unconfined])
    forbidden = [
        {"reason": "seccompProfile", "detail": 'pod must not set securityContext.seccompProfile.type to "Unconfined"'}
    ]
    assert answer == {
        "baseline": {"allowed": False, "forbidden": forbidden},
        "restricted": {"allowed": False, "forbidden": forbidden},
    }


def test_windows_pod_skips_linux_only_restricted_checks(oracle: K8sOracle) -> None:
    windows = pod({"os": {"name": "windows"}, "securityContext": {"runAsNonRoot": True}})
    # The restricted seccomp check skips Windows pods and replaces the baseline one, so an Unconfined
    # profile fails baseline yet passes restricted.
    unconfined = pod(
        {"os": {"name": "windows"}, "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "Unconfined"}}}
    )
    no_non_root = pod({"os": {"name": "windows"}})
    allowed, split, non_root = oracle.pod_security([windows, unconfined, no_non_root])
    assert allowed == {"baseline": ALLOWED, "restricted": ALLOWED}
    assert reasons(split["baseline"]) == ["seccompProfile"]
    assert split["restricted"] == ALLOWED
    assert non_root["baseline"] == ALLOWED
    assert reasons(non_root["restricted"]) == ["runAsNonRoot != true"]


def test_policy_version_is_honoured(oracle: K8sOracle) -> None:
    probe_host = pod({}, {"readinessProbe": {"httpGet": {"host": "evil.example", "port": 80}}})
    [latest] = oracle.pod_security([probe_host])
    [v133] = oracle.pod_security([probe_host], version="v1.33")
    assert latest["baseline"]["forbidden"] == [
        {"reason": "probe or lifecycle host", "detail": 'container "base" uses probe or lifecycle host "evil.example"'}
    ]
    assert v133["baseline"] == ALLOWED
    # Before v1.8 restricted did not require allowPrivilegeEscalation=false, nor (before v1.19/v1.22) seccomp or drop ALL.
    [v10] = oracle.pod_security([pod({})], version="v1.0")
    assert reasons(v10["restricted"]) == ["runAsNonRoot != true"]


def test_bad_version_fails_loudly(oracle: K8sOracle) -> None:
    with pytest.raises(RuntimeError, match=r'--version 1\.34: must be "latest" or "v1.x"'):
        oracle.pod_security([RESTRICTED], version="1.34")


def test_decoding_is_the_api_servers_one_error_line_per_bad_pod(oracle: K8sOracle) -> None:
    wrong_type = pod({}, {"ports": [{"containerPort": "80"}]})
    # Keys are case-sensitive: "Privileged" is an unknown field, dropped with a warning, not a privileged container.
    miscased = pod({}, {"securityContext": {"Privileged": True}, "bogus": 1})
    answers = oracle.pod_security([wrong_type, [], {"kind": "Deployment"}, miscased, RESTRICTED])  # type: ignore[list-item]
    assert answers[0] == {
        "error": "decode: json: cannot unmarshal string into Go struct field ContainerPort.spec.containers.ports.containerPort of type int32"
    }
    assert answers[1] == {"error": "decode: a Pod must be a JSON object"}
    assert answers[2] == {"error": 'decode: expected apiVersion v1, kind Pod, got "", "Deployment"'}
    assert answers[3]["baseline"] == ALLOWED
    assert answers[3]["warnings"] == [
        'unknown field "spec.containers[0].securityContext.Privileged"',
        'unknown field "spec.containers[0].bogus"',
    ]
    assert answers[4] == {"baseline": ALLOWED, "restricted": ALLOWED}


def test_a_big_batch_keeps_order_in_one_process(oracle: K8sOracle) -> None:
    privileged = pod({}, {"securityContext": {"privileged": True}})
    pods = [privileged if i % 3 == 0 else RESTRICTED for i in range(3000)]
    answers = oracle.pod_security(pods)
    assert [a["baseline"]["allowed"] for a in answers] == [i % 3 != 0 for i in range(3000)]


def image(
    domain: str, path: str, tag: str | None, digest: str | None, normalized: str, familiar: str, pulled: str
) -> dict[str, Any]:
    return {
        "valid": True,
        "domain": domain,
        "path": path,
        "tag": tag,
        "digest": digest,
        "normalized": normalized,
        "familiar": familiar,
        "withDefaultTag": pulled,
    }


INVALID = {"valid": False, "error": "invalid reference format"}


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (
            "nginx",
            image(
                "docker.io",
                "library/nginx",
                None,
                None,
                "docker.io/library/nginx",
                "nginx",
                "docker.io/library/nginx:latest",
            ),
        ),
        (
            "index.docker.io/nginx:1",
            image(
                "docker.io",
                "library/nginx",
                "1",
                None,
                "docker.io/library/nginx:1",
                "nginx:1",
                "docker.io/library/nginx:1",
            ),
        ),
        # A first component with an uppercase letter is a registry host, not a (forbidden) uppercase path.
        ("Evil/x:1", image("Evil", "x", "1", None, "Evil/x:1", "Evil/x:1", "Evil/x:1")),
        ("Localhost/x:1", image("Localhost", "x", "1", None, "Localhost/x:1", "Localhost/x:1", "Localhost/x:1")),
        (
            "ATTACKER-HOST/x:1",
            image("ATTACKER-HOST", "x", "1", None, "ATTACKER-HOST/x:1", "ATTACKER-HOST/x:1", "ATTACKER-HOST/x:1"),
        ),
        ("localhost/x", image("localhost", "x", None, None, "localhost/x", "localhost/x", "localhost/x:latest")),
        (
            f"localhost:5000/a/b@sha256:{HEX}",
            image(
                "localhost:5000",
                "a/b",
                None,
                f"sha256:{HEX}",
                f"localhost:5000/a/b@sha256:{HEX}",
                f"localhost:5000/a/b@sha256:{HEX}",
                f"localhost:5000/a/b@sha256:{HEX}",
            ),
        ),
        (
            f"nginx:1@sha256:{HEX}",
            image(
                "docker.io",
                "library/nginx",
                "1",
                f"sha256:{HEX}",
                f"docker.io/library/nginx:1@sha256:{HEX}",
                f"nginx:1@sha256:{HEX}",
                f"docker.io/library/nginx:1@sha256:{HEX}",
            ),
        ),
        (
            "nginx:" + "t" * 128,
            image(
                "docker.io",
                "library/nginx",
                "t" * 128,
                None,
                "docker.io/library/nginx:" + "t" * 128,
                "nginx:" + "t" * 128,
                "docker.io/library/nginx:" + "t" * 128,
            ),
        ),
        ("nginx:" + "t" * 129, INVALID),
        ("nginx ", INVALID),
        ("", INVALID),
        ("evil/X:1", {"valid": False, "error": "invalid reference format: repository name (evil/X) must be lowercase"}),
        (
            "UPPER",
            {"valid": False, "error": "invalid reference format: repository name (library/UPPER) must be lowercase"},
        ),
        (
            HEX,
            {"valid": False, "error": f"invalid repository name ({HEX}), cannot specify 64-byte hexadecimal strings"},
        ),
    ],
)
def test_image_references_parse_like_containerd(oracle: K8sOracle, ref: str, expected: dict[str, Any]) -> None:
    assert oracle.parse_images([ref]) == [expected]


def test_image_batch_keeps_order_and_reports_non_strings(oracle: K8sOracle) -> None:
    answers = oracle.parse_images(["nginx", 42, "a\nb", "busybox"])  # type: ignore[list-item]
    assert [a.get("valid") for a in answers] == [True, None, False, True]
    assert answers[1] == {
        "error": "decode: each line must be a JSON string: json: cannot unmarshal number into Go value of type string"
    }


def test_missing_binary_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOM_K8S_ORACLE_BIN", str(tmp_path / "nope"))
    with pytest.raises(OracleMissing, match="run scripts/install-tools"):
        K8sOracle()
