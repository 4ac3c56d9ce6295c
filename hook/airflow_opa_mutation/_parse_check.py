"""The opt-in parse-time check (``[opa_mutation] parse_time_check``): Airflow's ``task_policy``.

While the DAG processor parses a DAG file, each KubernetesPodOperator task's pod is built the way ``scan``
builds it (``_task_pods``: the operator's own ``build_pod_request_obj(dry_run=True)``) and evaluated in
dry-run. A pod the policies deny raises ``AirflowClusterPolicyViolation`` naming the task and every deny
message: Airflow records it as the DAG file's import error (UI, ``GET /api/v2/importErrors``) before
anything runs. Nothing about the task is changed.

- Only in the DAG processor's parsing child (:func:`parsing_in_dag_processor`): never in a task process
  (the task runner re-parses its DAG), the scheduler or ``airflow dags`` commands.
- Never blocks parsing: OPA is asked with a timeout of at most :data:`TIMEOUT` seconds; when it cannot
  be asked (down, slow, an error), a warning goes to the DAG processor's log and the rest of this file's
  tasks go unchecked. Only a decision whose ``deny`` is not empty raises; ``warn`` messages are logged.
- Cached on disk (each file is parsed in a new process): keyed on the DAG file's content, the pod as the
  hook would see it (its random name suffix left out), the OPA url and decision path, and the bundle
  revision OPA reported (provenance). The last revision seen is trusted for :data:`REVISION_TTL` seconds,
  so re-parsing an unchanged file asks OPA nothing; a new bundle is noticed within that time. An OPA with
  no bundle (policies from files) reports no revision: its verdicts are then kept that long only.

A guardrail for DAG authors, not a boundary: DAG code runs in the same process and can defeat it
(docs/threat-model.md). The hook (and the admission webhook) still decide when the pod is launched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

from ._airflow_context import escape, parsing_in_dag_processor
from ._task_pods import RecordingHook, is_kpo, kpo_pods, recording
from ._version import __version__
from .config import Settings, load_settings
from .errors import ConfigError, Message, PodDenied
from .hook import Outcome

log = logging.getLogger("airflow_opa_mutation")

#: Seconds a parse-time decision may take at most (less when ``timeout`` is less).
TIMEOUT = 2.0
#: Map indexes checked per mapped operator (like ``scan --max-map``).
MAX_MAP = 32
#: Cached verdicts kept on disk; the oldest go first.
CACHE_ENTRIES = 4096
#: Seconds the last bundle revision OPA reported is taken as current without asking OPA.
REVISION_TTL = 60.0
#: Imported by every DAG file that uses the operator (or a subclass): without it, no task is one.
_KPO_MODULE = "airflow.providers.cncf.kubernetes.operators.pod"

_settings: Settings | None = None
_settings_read = False
#: Why OPA could not be asked in this process: the rest of the file is left unchecked (one warning).
_gave_up: str | None = None


def check_task(task: Any) -> None:
    """Airflow's ``task_policy``: raise ``AirflowClusterPolicyViolation`` when the policies deny the pod
    ``task`` (a KubernetesPodOperator) would launch; otherwise return, leaving ``task`` unchanged."""
    if _KPO_MODULE not in sys.modules or not parsing_in_dag_processor():
        return
    try:
        settings = _check_settings()
        if settings is None or _gave_up is not None or not is_kpo(task):
            return
        denied = _evaluate(task, settings)
    except Exception as exc:  # anything else would become an import error: only a denial may
        log.warning("opa_mutation parse_time_check: %s not checked: %s: %s", _where(task), type(exc).__name__, exc)
        return
    if denied:
        from airflow.exceptions import AirflowClusterPolicyViolation

        found = [(task, denied), *_later_denials(task, settings)]
        raise AirflowClusterPolicyViolation("\n".join(_violation(*each) for each in found) + _FOOTER)


def _later_denials(task: Any, settings: Settings) -> list[tuple[Any, list[tuple[int, tuple[Message, ...]]]]]:
    """The DAG's tasks after ``task`` that are denied too: Airflow stops at the first violation, and one
    import error naming them all saves the DAG author a round trip per task."""
    found = []
    try:
        tasks = list(task.dag.tasks)
        position = next(index for index, each in enumerate(tasks) if each is task)
        for other in tasks[position + 1 :]:
            if _gave_up is not None:
                break
            if is_kpo(other) and (denied := _evaluate(other, settings)):
                found.append((other, denied))
    except Exception as exc:  # the first denial is reported all the same
        log.warning("opa_mutation parse_time_check: the tasks after %s not checked: %s", _where(task), exc)
    return found


def _check_settings() -> Settings | None:
    """The settings of the check when it is on (read once per process), else ``None``."""
    global _settings, _settings_read  # noqa: PLW0603
    if not _settings_read:
        _settings_read = True
        try:
            settings = load_settings()
        except ConfigError as exc:
            log.warning("opa_mutation parse_time_check: not checking, the configuration is invalid: %s", exc)
            return None
        if settings.parse_time_check and settings.mode != "off":
            _settings = dataclasses.replace(settings, timeout=min(settings.timeout, TIMEOUT))
    return _settings


def _evaluate(task: Any, settings: Settings) -> list[tuple[int, tuple[Message, ...]]]:
    """The deny messages of each of ``task``'s pods (with its map index) the policies deny."""
    global _gave_up  # noqa: PLW0603
    with recording(settings, _CachingHook) as recording_hook:
        recorder = cast(_CachingHook, recording_hook)
        recorder.file_hash = _file_hash(getattr(task, "fileloc", None) or getattr(task.dag, "fileloc", None))
        rows = kpo_pods(task, recorder, MAX_MAP)
    denied: list[tuple[int, tuple[Message, ...]]] = []
    where = _where(task)
    for row in rows:
        decision = row.outcome.decision if row.outcome is not None else None
        for message in decision.warn if decision is not None else ():
            log.warning("opa_mutation parse_time_check: policy warning for %s: %s", where, escape(str(message)))
        if decision is not None and decision.deny:
            denied.append((row.map_index, decision.deny))
        elif row.outcome is not None and row.outcome.error is not None:
            _gave_up = f"{type(row.outcome.error).__name__}: {row.outcome.error}"
        elif row.error:
            log.warning("opa_mutation parse_time_check: cannot build the pod of %s: %s", where, escape(row.error))
    if _gave_up is not None:
        log.warning(
            "opa_mutation parse_time_check: OPA could not be asked (%s); %s and the rest of this file are not "
            "checked at parse time (the hook still decides when the pod is launched)",
            escape(_gave_up, limit=1024),
            where,
        )
    return denied


def _where(task: Any) -> str:
    return f"task {escape(str(getattr(task, 'dag_id', '?')))}.{escape(str(getattr(task, 'task_id', '?')))}"


def _violation(task: Any, denied: list[tuple[int, tuple[Message, ...]]]) -> str:
    lines = [f"airflow_opa_mutation: task {task.task_id!r} of DAG {task.dag_id!r} would be denied by policy"]
    for map_index, messages in denied:
        prefix = f"  map index {map_index}: " if map_index >= 0 else "  "
        lines.extend(prefix + escape(str(message), limit=2048) for message in messages)
    return "\n".join(lines)


_FOOTER = "\n(checked at parse time, [opa_mutation] parse_time_check; the pod would be refused when it runs)"


# -- the cache ----------------------------------------------------------------------------------------


class _CachingHook(RecordingHook):
    """scan's recorder, answering from the on-disk cache when it can and filling it when it asked OPA."""

    file_hash: str = ""

    def evaluate(self, pod: Any, *, mode: str | None = None) -> Outcome:
        cache = _Cache.default()
        material = self._material(pod)
        revision = cache.revision() if material is not None else None
        if material is not None and revision is not None:
            hit = cache.get(_key(material, revision))
            if hit is not None and (revision or _fresh(hit)):
                return _cached_outcome(hit)
        outcome = super().evaluate(pod, mode="dry-run")
        decision = outcome.decision
        if material is not None and decision is not None:
            from ._audit import revision as revision_of

            revision = revision_of(decision) or ""
            cache.set_revision(revision)
            cache.put(
                _key(material, revision),
                {
                    "deny": [_message_json(m) for m in decision.deny],
                    "warn": [_message_json(m) for m in decision.warn],
                    "at": time.time(),
                },
            )
        return outcome

    def _material(self, pod: Any) -> str | None:
        """What the decision depends on, as a string; ``None`` when the pod cannot be encoded (not cached)."""
        from . import _pod_codec

        try:
            doc = _pod_codec.encode(pod)
        except Exception:
            return None
        metadata = doc.get("metadata")
        if isinstance(metadata, dict):  # build_pod_request_obj adds a random suffix to the name
            metadata.pop("name", None)
        settings = self.settings
        return json.dumps(
            [__version__, settings.url, settings.decision_path, self.file_hash, doc], sort_keys=True, default=str
        )


def _fresh(entry: dict[str, Any]) -> bool:
    """Without a bundle revision (policies loaded from files) a verdict is trusted for REVISION_TTL only."""
    at = entry.get("at")
    return isinstance(at, (int, float)) and 0 <= time.time() - at < REVISION_TTL


def _key(material: str, revision: str) -> str:
    return hashlib.sha256(f"{revision}\0{material}".encode()).hexdigest()


def _message_json(message: Message) -> dict[str, str | None]:
    return {"msg": message.msg, "policy": message.policy}


def _cached_outcome(entry: dict[str, Any]) -> Outcome:
    from .decision import Decision
    from .errors import PodRef

    def messages(member: str) -> tuple[Message, ...]:
        return tuple(Message(str(m.get("msg")), m.get("policy")) for m in entry.get(member, []) if isinstance(m, dict))

    decision = Decision(deny=messages("deny"), warn=messages("warn"))
    ref = PodRef(None, None)
    error = PodDenied(decision.deny, pod=ref) if decision.deny else None
    return Outcome(pod=ref, request_uid="cached", mode="dry-run", decision=decision, error=error, result="cached")


def _file_hash(fileloc: Any) -> str:
    if not fileloc:
        return ""
    try:
        return hashlib.sha256(Path(str(fileloc)).read_bytes()).hexdigest()
    except OSError:
        return ""


class _Cache:
    """Verdicts as small JSON files in one folder, written atomically; at most :data:`CACHE_ENTRIES`."""

    _default: _Cache | None = None

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def default(cls) -> _Cache:
        if cls._default is None:
            home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
            cls._default = cls(Path(home) / "cache" / "airflow_opa_mutation" / "parse_check")
        return cls._default

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            entry = json.loads((self.folder / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None
        return entry if isinstance(entry, dict) else None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        if self._write(f"{key}.json", entry):
            self._prune()

    def revision(self) -> str | None:
        """The bundle revision OPA last reported, while fresher than :data:`REVISION_TTL`, else ``None``."""
        entry = self.get("revision")
        if entry is None or not isinstance(entry.get("revision"), str):
            return None
        at = entry.get("at")
        if not isinstance(at, (int, float)) or not 0 <= time.time() - at < REVISION_TTL:
            return None
        revision: str = entry["revision"]
        return revision

    def set_revision(self, revision: str) -> None:
        self._write("revision.json", {"revision": revision, "at": time.time()})

    def _write(self, name: str, entry: dict[str, Any]) -> bool:
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, temporary = tempfile.mkstemp(dir=self.folder, prefix=".tmp-")
            with os.fdopen(fd, "w") as file:
                json.dump(entry, file)
            os.replace(temporary, self.folder / name)
        except OSError as exc:  # a read-only AIRFLOW_HOME: no cache, every parse asks OPA
            log.debug("opa_mutation parse_time_check: cannot write the cache: %s", exc)
            return False
        return True

    def _prune(self) -> None:
        try:
            entries = [entry for entry in os.scandir(self.folder) if entry.name.endswith(".json")]
        except OSError:
            return
        if len(entries) <= CACHE_ENTRIES:
            return
        entries.sort(key=lambda entry: entry.stat().st_mtime if entry.name != "revision.json" else float("inf"))
        for entry in entries[: len(entries) - CACHE_ENTRIES * 3 // 4]:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
