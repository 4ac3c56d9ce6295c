"""Mutation checks: does each test that claims to guard a piece of code fail when that code is wrong?

Reads the curated list in tests/mutants.yaml. Each mutant is one deliberate bug (an exact ``find`` text
replaced by ``replace``) and the tests that must fail because of it: pytest node ids and/or an
``opa test`` run filtered with ``-r``. The runner copies the repository (``git ls-files``, working-tree
contents, untracked files that are not ignored) to a scratch folder per job, never touching the real
tree; first runs every distinct test set on the unmutated copy (a test that already fails kills
nothing), then applies one mutant at a time, runs only its tests and puts the file back.

A mutant is KILLED when one of its tests fails, SURVIVED when all pass. A ``find`` text that does not
occur exactly once (the code moved on: update the mutant), a mutant that does not even compile (a
syntax error kills every test and proves nothing), a test command that errors, and a test set that fails
unmutated are each reported, and each makes the exit status non-zero, like a survivor.

Usage (scripts/mutants runs this with the kubernetes 37 venv):
    scripts/mutants                      every mutant; writes tests/mutants-last.txt
    scripts/mutants --ci                 the mutants marked ``ci: true`` (scripts/test runs these)
    scripts/mutants --only id,id         the named mutants
    scripts/mutants --list               the mutants, their tests and the ci mark
    --file LIST                          another list (trying mutants out; no results file is written)
    --jobs N                             mutants run at once (default 1; each has its own copy)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
MUTANTS_FILE = REPO / "tests" / "mutants.yaml"
RESULTS_FILE = REPO / "tests" / "mutants-last.txt"
VENVS = {"k37": ".tools/venv-k37/bin/python", "airflow": ".tools/venv-airflow/bin/python"}
# A test run that takes this long is stopped and counted as a kill (a mutant that makes code hang).
TIMEOUT = float(os.environ.get("AOM_MUTANT_TIMEOUT", "1800"))
# The folders whose Rego `opa check` compiles after a mutation of a .rego file under them.
REGO_ROOTS = ("policies", "deploy/opa")

KILLED, SURVIVED, STALE, INVALID, ERROR, UNTESTED = (
    "killed",
    "SURVIVED",
    "DOES NOT APPLY",
    "INVALID",
    "ERROR",
    "BASELINE FAILS",
)

STATUSES = (KILLED, SURVIVED, STALE, INVALID, ERROR, UNTESTED)

_MUTANT_KEYS = {"id", "file", "find", "replace", "edits", "why", "pytest", "opa", "venv", "env", "ci"}
_EDIT_KEYS = {"file", "find", "replace"}


class ListError(ValueError):
    """tests/mutants.yaml is malformed."""


@dataclass(frozen=True)
class Edit:
    file: str
    find: str
    replace: str


@dataclass(frozen=True)
class TestSet:
    """What a mutant runs; mutants with equal test sets share one unmutated baseline run."""

    pytest: tuple[str, ...]
    opa: tuple[str, ...]  # (folder, ..., run regex) or ()
    venv: str
    env: tuple[tuple[str, str], ...]

    def describe(self) -> str:
        parts = list(self.pytest)
        if self.opa:
            parts.append(f"opa test {' '.join(self.opa[:-1])} -r '{self.opa[-1]}'")
        extra = [f"venv {self.venv}"] if self.venv != "k37" else []
        extra += [f"{key}={value}" for key, value in self.env]
        return "; ".join(parts) + (f" ({', '.join(extra)})" if extra else "")


@dataclass(frozen=True)
class Mutant:
    id: str
    edits: tuple[Edit, ...]
    why: str
    tests: TestSet
    ci: bool


@dataclass
class Result:
    mutant: Mutant
    status: str
    seconds: float = 0.0
    detail: str = ""


@dataclass
class Outcome:
    """One run of a test set: passed, failed (and by what) or broken (an error that is no test failure)."""

    passed: bool
    broken: bool = False
    timed_out: bool = False
    detail: str = ""
    seconds: float = 0.0


# ------------------------------------------------------------------------------------------- the list


def _text(entry: dict[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or (key != "replace" and not value):
        raise ListError(f"{where}: '{key}' must be a{'' if key == 'replace' else ' non-empty'} string")
    return value


def _edits(entry: dict[str, Any], where: str) -> tuple[Edit, ...]:
    if "edits" in entry:
        if any(key in entry for key in ("find", "replace")):
            raise ListError(f"{where}: give either find/replace or edits, not both")
        raw = entry["edits"]
        if not isinstance(raw, list) or not raw:
            raise ListError(f"{where}: 'edits' must be a non-empty list")
    else:
        raw = [{"find": entry.get("find"), "replace": entry.get("replace")}]
    edits = []
    for number, item in enumerate(raw, 1):
        if not isinstance(item, dict) or set(item) - _EDIT_KEYS:
            raise ListError(f"{where}, edit {number}: keys are {sorted(_EDIT_KEYS)}")
        file = item.get("file", entry.get("file"))
        if not isinstance(file, str) or not file:
            raise ListError(f"{where}, edit {number}: no 'file'")
        edits.append(Edit(file, _text(item, "find", where), _text(item, "replace", where)))
    return tuple(edits)


def _tests(entry: dict[str, Any], where: str) -> TestSet:
    pytest = entry.get("pytest", [])
    if not isinstance(pytest, list) or not all(isinstance(node, str) and node for node in pytest):
        raise ListError(f"{where}: 'pytest' must be a list of node ids")
    opa: tuple[str, ...] = ()
    if "opa" in entry:
        spec = entry["opa"]
        if not isinstance(spec, dict) or set(spec) != {"paths", "run"}:
            raise ListError(f"{where}: 'opa' must be {{paths: [folders], run: regex}}")
        paths, run = spec["paths"], spec["run"]
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise ListError(f"{where}: opa 'paths' must be a non-empty list of folders")
        if not isinstance(run, str) or not run:
            raise ListError(f"{where}: opa 'run' must be a regex (opa test -r)")
        opa = (*paths, run)
    if not pytest and not opa:
        raise ListError(f"{where}: names no test (pytest and/or opa)")
    venv = entry.get("venv", "k37")
    if venv not in VENVS:
        raise ListError(f"{where}: venv must be one of {sorted(VENVS)}")
    env = entry.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, (str, int)) for k, v in env.items()):
        raise ListError(f"{where}: 'env' must map names to strings")
    return TestSet(tuple(pytest), opa, venv, tuple(sorted((k, str(v)) for k, v in env.items())))


def load(path: Path = MUTANTS_FILE) -> list[Mutant]:
    """The mutants of ``path``, checked for shape (not yet for applying: see :func:`stale`)."""
    document = yaml.safe_load(path.read_text())
    entries = document.get("mutants") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ListError(f"{path}: expected a top-level 'mutants:' list")
    mutants: list[Mutant] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, 1):
        where = f"mutant #{number}"
        if not isinstance(entry, dict):
            raise ListError(f"{where}: not a mapping")
        if unknown := set(entry) - _MUTANT_KEYS:
            raise ListError(f"{where}: unknown keys {sorted(unknown)}")
        mutant_id = _text(entry, "id", where)
        where = f"mutant {mutant_id}"
        if mutant_id in seen:
            raise ListError(f"{where}: duplicate id")
        seen.add(mutant_id)
        ci = entry.get("ci", False)
        if not isinstance(ci, bool):
            raise ListError(f"{where}: 'ci' must be true or false")
        why = _text(entry, "why", where)
        mutants.append(Mutant(mutant_id, _edits(entry, where), why, _tests(entry, where), ci))
    return mutants


def stale(mutant: Mutant, root: Path) -> str | None:
    """Why ``mutant`` does not apply to the tree at ``root`` (each ``find`` must occur exactly once)."""
    for edit in mutant.edits:
        target = root / edit.file
        if not target.is_file():
            return f"{edit.file} does not exist"
        found = target.read_text().count(edit.find)
        if found != 1:
            return f"{edit.file}: find text occurs {found} times, not once: {edit.find[:80]!r}"
        if edit.find == edit.replace:
            return f"{edit.file}: replace equals find"
    return None


# -------------------------------------------------------------------------------------- scratch copies


def repository_files(root: Path) -> list[str]:
    """Tracked files and untracked ones git does not ignore, as they are in the working tree."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted({name for name in listed.split("\0") if name})


def make_copy(root: Path, files: list[str], into: Path) -> Path:
    """A copy of the repository's files in ``into``, with ``.tools`` linked to the real one (read only)."""
    for name in files:
        source = root / name
        if not (source.is_file() or source.is_symlink()) or name == ".tools":
            continue  # deleted in the working tree, or a submodule
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    tools = root / ".tools"
    if tools.exists():
        (into / ".tools").symlink_to(tools.resolve())
    return into


# ------------------------------------------------------------------------------------------ test runs


def _environment(copy: Path, tests: TestSet) -> dict[str, str]:
    env = dict(os.environ)
    tools = (REPO / ".tools").resolve()
    env.setdefault("AOM_OPA_BIN", str(tools / "bin" / "opa"))
    env.setdefault("AOM_K8S_ORACLE_BIN", str(tools / "bin" / "k8s-oracle"))
    env["PYTHONPATH"] = str(copy / "hook")
    # No bytecode: a mutant and the restored original can share a size and an mtime second, and Python
    # would then run the stale .pyc of the other.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(dict(tests.env))
    return env


def _run(command: list[str], copy: Path, env: dict[str, str]) -> tuple[int | None, str, float]:
    started = time.monotonic()
    try:
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return None, "", time.monotonic() - started
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def _run_pytest(copy: Path, tests: TestSet, env: dict[str, str]) -> Outcome:
    python = str(REPO / VENVS[tests.venv])  # not resolved: a venv's python is a symlink to the base one
    command = [python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests.pytest]
    code, output, seconds = _run(command, copy, env)
    shutil.rmtree(copy / ".hypothesis", ignore_errors=True)  # no example carries over to the next run
    if code is None:
        return Outcome(False, timed_out=True, detail=f"pytest timed out after {TIMEOUT:.0f} s", seconds=seconds)
    if code == 0:
        return Outcome(True, seconds=seconds)
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+\.py(?:::.*?)?)(?: - .*)?$", output, re.MULTILINE)
    if code == 1 and failed:
        return Outcome(False, detail=f"by {failed[0]}", seconds=seconds)
    # 2: interrupted or collection errors, 3: internal error, 4: usage (a node id that does not exist),
    # 5: nothing collected. None of them is a test catching the mutant.
    tail = " | ".join(output.strip().splitlines()[-3:])
    return Outcome(False, broken=True, detail=f"pytest exited {code}: {tail}", seconds=seconds)


def _run_opa(copy: Path, tests: TestSet, env: dict[str, str]) -> Outcome:
    *paths, regex = tests.opa
    command = [env["AOM_OPA_BIN"], "test", *paths, "-r", regex]
    code, output, seconds = _run(command, copy, env)
    if code is None:
        return Outcome(False, timed_out=True, detail=f"opa test timed out after {TIMEOUT:.0f} s", seconds=seconds)
    summary = re.search(r"^(PASS|FAIL): (\d+)/(\d+)$", output, re.MULTILINE)
    if summary is None:
        tail = " | ".join(output.strip().splitlines()[-3:]) or "no test matches the regex"
        return Outcome(False, broken=True, detail=f"opa test exited {code}: {tail}", seconds=seconds)
    if code == 0 and summary[1] == "PASS":
        return Outcome(True, seconds=seconds)
    failed = re.findall(r"^(data\.\S+): (?:FAIL|ERROR)", output, re.MULTILINE)
    count = f"{int(summary[3]) - int(summary[2])}/{summary[3]} opa tests"
    return Outcome(False, detail=f"by {failed[0] if failed else 'opa test'} ({count} fail)", seconds=seconds)


def run_tests(copy: Path, tests: TestSet) -> Outcome:
    """The test set on ``copy``: opa test first (seconds), pytest only when it passed."""
    env = _environment(copy, tests)
    seconds = 0.0
    for runner, wanted in ((_run_opa, tests.opa), (_run_pytest, tests.pytest)):
        if not wanted:
            continue
        outcome = runner(copy, tests, env)
        seconds += outcome.seconds
        if not outcome.passed:
            outcome.seconds = seconds
            return outcome
    return Outcome(True, seconds=seconds)


def compile_error(copy: Path, mutant: Mutant) -> str | None:
    """Why the mutated files do not compile (Rego: `opa check` of their folder; Python: py_compile)."""
    opa = _environment(copy, mutant.tests)["AOM_OPA_BIN"]
    for edit in mutant.edits:
        if edit.file.endswith(".py"):
            try:
                compile((copy / edit.file).read_text(), edit.file, "exec")
            except SyntaxError as exc:
                return f"{edit.file}:{exc.lineno}: {exc.msg}"
        elif edit.file.endswith(".rego"):
            root = next((r for r in REGO_ROOTS if edit.file.startswith(r + "/")), str(Path(edit.file).parent))
            done = subprocess.run([opa, "check", root], cwd=copy, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                return " | ".join((done.stdout + done.stderr).strip().splitlines()[:2])
    return None


# ------------------------------------------------------------------------------------------- the runs


@dataclass
class Runner:
    mutants: list[Mutant]
    jobs: int
    verbose: bool = True
    copies: queue.Queue[Path] = field(default_factory=queue.Queue)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: a copy as the working tree has it, to check that each mutant applies (before any runs)
    pristine: Path | None = None
    #: the unmutated runs: distinct test sets and the seconds they took
    baselines: list[Outcome] = field(default_factory=list)

    def add_copy(self, copy: Path) -> None:
        self.pristine = self.pristine or copy
        self.copies.put(copy)

    def say(self, line: str) -> None:
        if self.verbose:
            with self.lock:
                print(line, flush=True)

    def baseline(self, tests: TestSet) -> Outcome:
        copy = self.copies.get()
        try:
            outcome = run_tests(copy, tests)
        finally:
            self.copies.put(copy)
        state = "passes" if outcome.passed else f"FAILS ({outcome.detail})"
        self.say(f"  baseline {state} in {outcome.seconds:.0f} s: {tests.describe()}")
        return outcome

    def mutate(self, mutant: Mutant) -> Result:
        copy = self.copies.get()
        originals = {edit.file: (copy / edit.file).read_text() for edit in mutant.edits}
        started = time.monotonic()
        try:
            for edit in mutant.edits:
                target = copy / edit.file
                target.write_text(target.read_text().replace(edit.find, edit.replace, 1))
            broken = compile_error(copy, mutant)
            if broken is not None:
                result = Result(mutant, INVALID, detail=broken)
            else:
                outcome = run_tests(copy, mutant.tests)
                if outcome.passed:
                    result = Result(mutant, SURVIVED, detail=f"{mutant.tests.describe()} still pass")
                elif outcome.broken:
                    result = Result(mutant, ERROR, detail=outcome.detail)
                else:
                    result = Result(mutant, KILLED, detail=outcome.detail)
        except Exception as exc:  # the runner's own failure on one mutant: report it, go on with the rest
            result = Result(mutant, ERROR, detail=f"{type(exc).__name__}: {exc}")
        finally:
            for name, text in originals.items():
                (copy / name).write_text(text)
            self.copies.put(copy)
        result.seconds = time.monotonic() - started
        self.say(f"  {result.status:<14} {mutant.id}  ({result.seconds:.0f} s) {result.detail}")
        return result

    def run(self) -> list[Result]:
        assert self.pristine is not None, "add_copy first"
        results: dict[str, Result] = {}
        live = []
        for mutant in self.mutants:
            problem = stale(mutant, self.pristine)
            if problem is not None:
                results[mutant.id] = Result(mutant, STALE, detail=problem)
                self.say(f"  {STALE:<14} {mutant.id}  {problem}")
            else:
                live.append(mutant)
        sets = sorted({m.tests for m in live}, key=lambda t: t.describe())
        with concurrent.futures.ThreadPoolExecutor(self.jobs) as pool:
            self.say(f"baselines: {len(sets)} distinct test sets on the unmutated copy")
            baselines = dict(zip(sets, pool.map(self.baseline, sets), strict=True))
            self.baselines = list(baselines.values())
            runnable = []
            for mutant in live:
                base = baselines[mutant.tests]
                if base.passed:
                    runnable.append(mutant)
                else:
                    results[mutant.id] = Result(mutant, UNTESTED, detail=f"unmutated: {base.detail}")
            self.say(f"mutants: {len(runnable)} to run, {self.jobs} at a time")
            for result in pool.map(self.mutate, runnable):
                results[result.mutant.id] = result
        return [results[m.id] for m in self.mutants]


def summary(results: list[Result], seconds: float) -> str:
    counts = {status: sum(1 for r in results if r.status == status) for status in STATUSES}
    always = (KILLED, SURVIVED)
    shown = [f"{counts[status]} {status.lower()}" for status in STATUSES if counts[status] or status in always]
    return f"{len(results)} mutants: {', '.join(shown)} in {seconds / 60:.1f} min"


def report(results: list[Result], seconds: float, runner: Runner) -> list[str]:
    width = max(len(r.mutant.id) for r in results)
    base = runner.baselines
    lines = [
        f"baselines: {sum(b.passed for b in base)} of {len(base)} distinct test sets pass unmutated "
        f"({sum(b.seconds for b in base) / 60:.1f} min)",
        "",
    ]
    lines += [f"{r.status:<14} {r.mutant.id:<{width}}  {r.seconds:5.0f} s  {r.detail}" for r in results]
    bad = [r for r in results if r.status != KILLED]
    if bad:
        lines += ["", "not killed:"]
        lines += [f"  {r.mutant.id}: {r.mutant.why} — tests: {r.mutant.tests.describe()}" for r in bad]
    return [*lines, "", f"{summary(results, seconds)}, {runner.jobs} job(s)"]


def _revision() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()

    changed = [line for line in git("status", "--porcelain").splitlines() if not line.endswith(str(RESULTS_FILE.name))]
    return git("rev-parse", "--short", "HEAD") + (" with uncommitted changes" if changed else "")


def _check(mutants: list[Mutant]) -> int:
    """1 when a mutant no longer applies to the code (its find text changed): scripts/lint's check."""
    stale_ones = [f"{m.id}: {reason}" for m in mutants if (reason := stale(m, REPO))]
    for line in stale_ones:
        print(f"mutants: does not apply: {line}", file=sys.stderr)
    return 1 if stale_ones else 0


def _list(mutants: list[Mutant]) -> int:
    for m in mutants:
        print(f"{m.id}{'  [ci]' if m.ci else ''}\n    {m.why}\n    tests: {m.tests.describe()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument("--ci", action="store_true", help="only the mutants marked ci: true")
    chosen.add_argument("--only", metavar="ID,...", help="only these mutants")
    chosen.add_argument("--list", action="store_true", help="list the mutants and exit")
    chosen.add_argument("--check", action="store_true",
                        help="only check that every mutant applies (each find text once); no test runs (scripts/lint)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run at once (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copies (their paths are printed)")
    parser.add_argument("--file", type=Path, default=MUTANTS_FILE, help="the list (default tests/mutants.yaml)")
    args = parser.parse_args(argv)

    try:
        mutants = load(args.file)
    except (ListError, yaml.YAMLError, OSError) as exc:
        print(f"mutants: {args.file}: {exc}", file=sys.stderr)
        return 2
    if args.check or args.list:
        return _check(mutants) if args.check else _list(mutants)
    full = not (args.ci or args.only) and args.file.resolve() == MUTANTS_FILE
    if args.ci:
        mutants = [m for m in mutants if m.ci]
    elif args.only:
        wanted = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = sorted(set(wanted) - {m.id for m in mutants})
        if unknown:
            print(f"mutants: no mutant named {', '.join(unknown)}", file=sys.stderr)
            return 2
        mutants = [m for m in mutants if m.id in wanted]
    if not mutants:
        print("mutants: nothing selected", file=sys.stderr)
        return 2

    started, load_average = time.monotonic(), os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(prefix="aom-mutants-"))
    runner = Runner(mutants, max(1, args.jobs))
    try:
        files = repository_files(REPO)
        for number in range(runner.jobs):
            runner.add_copy(make_copy(REPO, files, scratch / f"copy-{number}"))
        print(f"mutants: {len(mutants)} selected; scratch copies in {scratch}", flush=True)
        results = runner.run()
    finally:
        if args.keep:
            print(f"mutants: scratch copies kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    seconds = time.monotonic() - started
    lines = report(results, seconds, runner)
    print("\n" + "\n".join(lines))
    if full:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        header = [
            "# scripts/mutants: the last full run (every mutant in tests/mutants.yaml), committed with the code.",
            f"# {now}, commit {_revision()}, {os.cpu_count()} cores, load average {load_average:.1f} at the start",
            "",
        ]
        RESULTS_FILE.write_text("\n".join([*header, *lines]) + "\n")
        print(f"mutants: results written to {RESULTS_FILE.relative_to(REPO)}")
    return 0 if all(r.status == KILLED for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
