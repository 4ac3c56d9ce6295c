"""Differential test: policies/lib/images.rego parses image references exactly like the container runtime.

containerd and the kubelet parse an image with github.com/distribution/reference's
``ParseNormalizedNamed``; a policy that reads a reference differently can be walked around
(``Evil/x:1`` is pulled from the host ``Evil``, not from docker.io). Hypothesis generates a few
thousand references - the hostile forms, valid and invalid hosts, ports, path components, tags and
digests, uppercase, whitespace - the Go parser (tools/k8s-oracle) and our Rego (one ``opa eval`` of
``data.airflow.pod.lib.images.parse`` over all of them, on the real OPA binary) parse each one, and
they must agree on valid/invalid, host, path, tag, digest and the normalized string (``images.format``).

The seed is printed; ``AOM_DIFF_SEED=<seed>`` replays a run.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
from pathlib import Path

from hypothesis import Phase, given, seed, settings
from hypothesis import strategies as st

from tests.k8s_oracle import parse_images

REPO = Path(__file__).resolve().parents[1]
IMAGES_REGO = REPO / "policies" / "lib" / "images.rego"
MIN_REFERENCES = 2_000

# go-digest v1.0.0's algorithms (what distribution/reference v0.6.0 validates a digest with) and the length
# of each one's lowercase hex. distribution/reference's own pattern lets through any algorithm name and
# 32 or more hex digits of either case: the length, the case and the algorithm are go-digest's to judge,
# so every algorithm is tried with every wrong length and case, not only sha256.
DIGEST_ALGORITHMS = {"sha256": 64, "sha384": 96, "sha512": 128}


def wrong_lengths(algorithm: str) -> list[int]:
    """Hex lengths go-digest refuses for ``algorithm``: the pattern's minimum and one below it, one off
    either way, the other algorithms' lengths, twice the length."""
    size = DIGEST_ALGORITHMS[algorithm]
    edges = {31, 32, size - 1, size + 1, 2 * size, *DIGEST_ALGORITHMS.values()}
    return sorted(edges - {size})


# Every algorithm's wrong lengths and wrong cases, always included.
WRONG_DIGESTS = [
    *(f"{algorithm}:{'0' * length}" for algorithm in DIGEST_ALGORITHMS for length in wrong_lengths(algorithm)),
    *(f"{algorithm}:{'A' * size}" for algorithm, size in DIGEST_ALGORITHMS.items()),
    *(f"{algorithm}:{'a' * (size - 1)}F" for algorithm, size in DIGEST_ALGORITHMS.items()),
    *(f"{algorithm.upper()}:{'0' * size}" for algorithm, size in DIGEST_ALGORITHMS.items()),
]


# Forms found by attacking the old parser, and the edges of each Go rule, always included.
HOSTILE = [
    "Evil/x:1",
    "Localhost/x:1",
    "ATTACKER-HOST/x:1",
    "localhost/x:1",
    "LOCALHOST:5000/x",
    "evil/x:1",
    "python:3.11 ",
    "python:3.11\t",
    "python:3.11\n",
    " python:3.11",
    "",
    " ",
    "/",
    "python:" + "a" * 128,
    "python:" + "a" * 129,
    "a" * 64,
    "A" * 64,
    "a" * 63,
    "a" * 64 + ":1",
    "docker.io/" + "a" * 64,
    "x/" + "a" * 253,
    "x/" + "a" * 254,
    "library/" + "a" * 248,
    "a" * 248,
    "a" * 247,
    "registry.example.com/" + "b" * 255,
    "registry.example.com/" + "b" * 256,
    "index.docker.io/python",
    "index.docker.io/apache/airflow:3",
    "docker.io/python",
    "Docker.io/python",
    "DOCKER.IO/library/python",
    "a_b.c/x",
    "a_b:5000/x",
    "A_B/x",
    "[::1]:5000/x",
    "[::1]/x",
    "[::G]/x",
    "127.0.0.1:5000/x:tag@sha256:" + "0" * 64,
    "x@sha256:" + "0" * 64,
    "x@sha256:" + "0" * 63,
    "x@sha256:" + "0" * 65,
    "x@sha256:" + "A" * 64,
    "x@SHA256:" + "0" * 64,
    "x@sha384:" + "0" * 96,
    "x@sha512:" + "0" * 128,
    "x@md5:" + "0" * 32,
    "x@sha256:" + "0" * 64 + "\n",
    *(f"x@{digest}" for digest in WRONG_DIGESTS),
    *(f"registry.example.com:5000/team/x:1@{digest}" for digest in WRONG_DIGESTS),
    "x:1@sha256:" + "0" * 64,
    "x:@sha256:" + "0" * 64,
    "evil.io/" + "<" * 1000,
    "x::1",
    "x:1:2",
    "x/y:1/z",
    "-x",
    "x-",
    "x__y",
    "x___y",
    "x--y",
    "x..y",
    "x._y",
    "É/x",
    "é/x",
    "ﬀ/x",
]

_LOWER = "abcdefghijklmnopqrstuvwxyz0123456789"
_HOST_CHARS = _LOWER + "ABCDEFGHIJKLMNOPQRSTUVWXYZ-."
_PATH_CHARS = _LOWER + "._-"
_TAG_CHARS = _LOWER + "ABCDEFGHIJKLMNOPQRSTUVWXYZ_.-"
_NOISE = " \t\n\r/:@._-[]<>ÄäÉé\u00a0\u212a"

HOSTS = st.one_of(
    st.sampled_from(
        [
            "docker.io",
            "index.docker.io",
            "localhost",
            "Localhost",
            "LOCALHOST",
            "Evil",
            "ATTACKER-HOST",
            "registry.example.com",
            "Registry.Example.com",
            "quay.io",
            "ghcr.io",
            "127.0.0.1",
            "[::1]",
            "[fe80::1]",
            "a_b.c",
            "a_b",
            "library",
            "-bad.com",
            "bad-.com",
            "a..b",
            "x.y-",
            "host",
        ]
    ),
    st.text(_HOST_CHARS, min_size=1, max_size=20),
    st.builds(
        lambda h, p: f"{h}:{p}",
        st.sampled_from(["localhost", "registry.example.com", "Evil", "[::1]", "a"]),
        st.one_of(st.integers(0, 70000).map(str), st.sampled_from(["", "port", "50a", "-1"])),
    ),
)

PATH_COMPONENT = st.one_of(
    st.sampled_from(["library", "python", "apache", "airflow", "a", "x", "a.b", "a_b", "a__b", "a---b", "Upper"]),
    st.text(_PATH_CHARS, min_size=1, max_size=16),
    st.text(_PATH_CHARS + "ABZ", min_size=1, max_size=8),
    st.sampled_from([1, 2, 63, 64, 65, 127, 128, 200, 246, 247, 248, 253, 254, 255, 256]).map(lambda n: "a" * n),
)

TAGS = st.one_of(
    st.sampled_from(["latest", "3.11", "v1.2.3", "V1", "_x", ".x", "-x", "a" * 128, "a" * 129, "b" * 127]),
    st.text(_TAG_CHARS, min_size=1, max_size=12),
    st.integers(120, 135).map(lambda n: "t" * n),
)

_HEX = "0123456789abcdef"


def wrong_digests(algorithm: str | None = None) -> st.SearchStrategy[str]:
    """Digests of a known algorithm (``algorithm``, else any) that go-digest refuses: a wrong length, or
    the right length with uppercase hex."""
    algorithms = [algorithm] if algorithm else sorted(DIGEST_ALGORITHMS)
    return st.sampled_from(algorithms).flatmap(_wrong_digest)


@st.composite
def _wrong_digest(draw: st.DrawFn, algorithm: str) -> str:
    size = DIGEST_ALGORITHMS[algorithm]
    if draw(st.booleans()):  # wrong length: near the right one, anywhere from 1 to past twice it
        length = draw(
            st.one_of(
                st.sampled_from(wrong_lengths(algorithm)),
                st.integers(1, 2 * size + 8).filter(lambda n: n != size),
            )
        )
        return f"{algorithm}:{draw(st.text(_HEX, min_size=length, max_size=length))}"
    encoded = draw(st.text(_HEX, min_size=size, max_size=size))
    at = draw(st.integers(0, size - 1))  # the right length, with uppercase hex: all of it or one digit
    encoded = encoded.upper() if draw(st.booleans()) else encoded[:at] + "ABCDEF"[at % 6] + encoded[at + 1 :]
    return f"{algorithm}:{encoded}"


def is_wrong_digest(ref: str, algorithm: str) -> bool:
    """``ref`` ends in a digest of ``algorithm`` that go-digest refuses for its length or case."""
    found = re.search(rf"@{algorithm}:([0-9A-Fa-f]+)$", ref)
    return found is not None and not re.fullmatch(rf"[0-9a-f]{{{DIGEST_ALGORITHMS[algorithm]}}}", found[1])


DIGESTS = st.one_of(
    wrong_digests(),
    wrong_digests(),
    st.builds(lambda h: "sha256:" + h, st.text(_HEX, min_size=64, max_size=64)),
    st.builds(lambda h: "sha384:" + h, st.text(_HEX, min_size=96, max_size=96)),
    st.builds(lambda h: "sha512:" + h, st.text(_HEX, min_size=128, max_size=128)),
    st.builds(
        lambda alg, h: f"{alg}:{h}",
        st.sampled_from(["sha256", "sha512", "SHA256", "md5", "sha256+b64", "a.b", "9x", ""]),
        st.text(_HEX + "ABCDEFg", min_size=0, max_size=130),
    ),
    st.integers(30, 130).map(lambda n: "sha256:" + "f" * n),
)


@st.composite
def names(draw: st.DrawFn) -> str:
    """[host "/"] path [":" tag]."""
    parts = []
    if draw(st.booleans()):
        parts.append(draw(HOSTS))
    parts.extend(draw(st.lists(PATH_COMPONENT, min_size=1, max_size=4)))
    ref = "/".join(parts)
    if draw(st.booleans()):
        ref += ":" + draw(TAGS)
    return ref


@st.composite
def references(draw: st.DrawFn) -> str:
    """One reference: [host "/"] path [":" tag] ["@" digest], then perhaps mangled."""
    ref = draw(names())
    if draw(st.integers(0, 3)) == 0:
        ref += "@" + draw(DIGESTS)
    mangle = draw(st.integers(0, 14))
    if mangle == 0:  # whitespace or a stray character somewhere
        at = draw(st.integers(0, len(ref)))
        ref = ref[:at] + draw(st.sampled_from(_NOISE)) + ref[at:]
    elif mangle == 1:  # trailing whitespace
        ref += draw(st.sampled_from([" ", "\t", "\n", "\r\n"]))
    elif mangle == 2:  # anything from a small hostile alphabet
        ref = draw(st.text(_LOWER[:6] + "A" + _NOISE, max_size=24))
    elif mangle == 3:  # a bare identifier, or nearly one
        ref = draw(st.text("0123456789abcdefA", min_size=62, max_size=66))
    return ref


def run_seed() -> int:
    """The run's seed: AOM_DIFF_SEED when set (to replay), else a fresh one."""
    return int(os.environ.get("AOM_DIFF_SEED") or random.SystemRandom().randrange(2**32))


def generate(run: int) -> list[str]:
    """At least MIN_REFERENCES references from hypothesis, reproducible from ``run``, hostile forms first."""
    collected: list[str] = list(HOSTILE)

    @seed(run)
    @settings(max_examples=60, database=None, phases=[Phase.generate], deadline=None)
    @given(st.lists(references(), min_size=40, max_size=60))
    def collect(refs: list[str]) -> None:
        collected.extend(refs)

    collect()
    # Each algorithm's refused digests on their own, so that every algorithm is reached however the
    # draws above fell (asserted in the test).
    for algorithm in DIGEST_ALGORITHMS:

        @seed(run)
        @settings(max_examples=10, database=None, phases=[Phase.generate], deadline=None)
        @given(st.lists(st.builds("{}@{}".format, names(), wrong_digests(algorithm)), min_size=5, max_size=5))
        def collect_digests(refs: list[str]) -> None:
            collected.extend(refs)

        collect_digests()
    return collected


def rego_parse(refs: list[str]) -> dict[int, dict[str, str]]:
    """Our parse of every reference, in ONE ``opa eval`` on the real OPA binary: index -> parts."""
    opa = os.environ.get("AOM_OPA_BIN")
    assert opa, "AOM_OPA_BIN must name the OPA binary (scripts/test sets it)"
    images = "data.airflow.pod.lib.images"
    query = f'{{i: object.union(p, {{"normalized": {images}.format(p)}}) | some i, r in input; p := {images}.parse(r)}}'

    result = subprocess.run(
        [opa, "eval", "--stdin-input", "--format", "json", "--data", str(IMAGES_REGO), query],
        input=json.dumps(refs),
        capture_output=True,
        text=True,
        check=True,
    )
    parsed = json.loads(result.stdout)["result"][0]["expressions"][0]["value"]
    return {int(i): parts for i, parts in parsed.items()}


def comparable_go(answer: dict[str, object]) -> tuple[object, ...]:
    if not answer["valid"]:
        return (False,)
    parts = (answer.get("domain") or "", answer["path"], answer.get("tag") or "", answer.get("digest") or "")
    return (True, *parts, answer["normalized"])


def comparable_rego(parts: dict[str, str] | None) -> tuple[object, ...]:
    if parts is None:
        return (False,)
    return (True, parts["registry"], parts["repository"], parts["tag"], parts["digest"], parts["normalized"])


def plain_patterns() -> list[re.Pattern[str]]:
    """The literal patterns of images.rego's fast branches (plain references), as Python regexes."""
    found = re.findall(r"regex\.match\(`(\^\[a-z0-9\]\+[^`]*)`, ref\)", IMAGES_REGO.read_text())
    assert len(found) == 3, f"expected the three plain-reference patterns in images.rego, found {found!r}"
    return [re.compile(pattern, re.ASCII) for pattern in found]


def test_rego_parses_image_references_like_distribution_reference() -> None:
    run = run_seed()
    print(f"image reference differential: seed {run} (replay with AOM_DIFF_SEED={run})")
    refs = generate(run)
    assert len(refs) >= MIN_REFERENCES

    go = parse_images(refs)
    ours = rego_parse(refs)

    disagreements = [
        (ref, comparable_go(answer), comparable_rego(ours.get(i)))
        for i, (ref, answer) in enumerate(zip(refs, go, strict=True))
        if comparable_go(answer) != comparable_rego(ours.get(i))
    ]
    valid = sum(1 for answer in go if answer["valid"])
    # Each fast branch of parse (and the general rule behind them) is judged on many references.
    for pattern in plain_patterns():
        assert sum(1 for ref in refs if pattern.fullmatch(ref)) >= 25, f"few references for {pattern.pattern}"
    # Every algorithm's digests are generated at wrong lengths and cases, beyond the fixed ones in HOSTILE.
    generated = refs[len(HOSTILE) :]
    wrong = {
        algorithm: sum(1 for ref in generated if is_wrong_digest(ref, algorithm)) for algorithm in DIGEST_ALGORITHMS
    }
    print(f"generated wrong-length or uppercase digests per algorithm: {wrong}")
    for algorithm, found in wrong.items():
        assert found >= 50, f"few generated wrong {algorithm} digests: {wrong}"
    print(f"{len(refs)} references ({valid} valid, {len(refs) - valid} invalid), {len(disagreements)} disagreements")
    assert not disagreements, f"seed {run}: Go and Rego disagree (ref, go, rego): {disagreements[:20]!r}"
