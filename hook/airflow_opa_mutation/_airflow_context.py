"""Which Airflow task a pod belongs to, read from the labels and annotations Airflow sets before the hook.

The KubernetesExecutor writes the ids twice: as labels (sanitized to fit Kubernetes label rules) and as
annotations (verbatim). Annotations win where both exist, because policies match ``dag_id``/``task_id``
globs against the real ids, not their sanitized form.

The KubernetesPodOperator writes labels only, each passed through the provider's
``make_safe_label_value``: a run id such as ``manual__2026-11-25T12:00:00+00:00`` becomes
``manual__2026-11-25T120000-0000-<hash>``, and a dag or task id longer than 63 characters or holding a
character labels do not allow is cut and hashed the same way. The real ids are not in the pod. The
operator calls the hook inside the running task, though, where the task runner has set Airflow's current
task context (``airflow.sdk.get_current_context()``); when that context is the task the pod's labels
name (its ids, sanitized the same way, equal the labels), ``dag_id``, ``task_id`` and ``run_id`` are
taken from it. Nothing of Airflow is imported for this: the context is looked up only in modules the
process has already loaded, and any failure leaves the label values in place.

None of this is a boundary against DAG code running in the same process: it can set, empty or forge any
of what is read here (docs/threat-model.md, "Where the ids come from").
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Callable, Mapping
from types import CodeType, FrameType
from typing import Any

LAUNCHER_EXECUTOR = "kubernetes_executor"
LAUNCHER_KPO = "kubernetes_pod_operator"
LAUNCHER_UNKNOWN = "unknown"

_TEXT_IDS = ("dag_id", "task_id", "run_id")
_INT_IDS = ("try_number", "map_index")

#: Where Airflow 3's task SDK keeps ``get_current_context`` (imported by ``import airflow`` itself).
_CONTEXT_MODULE = "airflow.sdk.definitions.context"
#: The cncf.kubernetes provider's module holding ``make_safe_label_value`` (the operator imports it).
_PROVIDER_POD_GENERATOR = "airflow.providers.cncf.kubernetes.pod_generator"
#: Airflow 3's task runner. Its ``SUPERVISOR_COMMS`` is set in every process a supervisor starts to run
#: DAG code (a task, DAG file parsing, callbacks, the triggerer's runner), never in the scheduler.
_TASK_RUNNER = "airflow.sdk.execution_time.task_runner"
#: The DAG processor's parsing: ``_parse_file`` runs in the child process it starts per DAG file.
_DAG_PROCESSOR = "airflow.dag_processing.processor"
#: Where every Airflow executor's base class lives (the scheduler has it loaded).
_BASE_EXECUTOR = "airflow.executors.base_executor"
#: What the task runner exports into a task's environment before ``execute()`` (``AIRFLOW_CTX_DAG_ID``,
#: ...): inherited by the processes the task starts.
_TASK_ENV_PREFIX = "AIRFLOW_CTX_"

_MAX_LABEL_LEN = 63
_UNSAFE_LABEL_CHARS = re.compile(r"^[^a-z0-9A-Z]*|[^a-zA-Z0-9_\-\.]|[^a-z0-9A-Z]*$")


def _as_int(value: str) -> int | None:
    try:
        return int(value.strip())
    except (AttributeError, ValueError):
        return None


def airflow_context(
    labels: Mapping[str, Any], annotations: Mapping[str, Any], *, trust_pod: bool = False
) -> dict[str, Any]:
    """``input.airflow``: the ids Airflow set (each absent when unknown), the launcher, and which of them
    only the pod vouches for (``untrusted``, present when not empty).

    Labels and annotations are the DAG author's to write (``pod_override``, operator arguments), so they
    are trusted only when Airflow confirms them: on the executor path the arguments the scheduler passed
    to ``PodGenerator.construct_pod`` (the hook runs inside that call), on the operator path the running
    task's context (see the module docstring). The ``kubernetes_pod_operator`` label wins over
    ``kubernetes_executor`` where neither is confirmed. ``trust_pod`` (tools that stand in for Airflow:
    the command line, the demo) takes the pod's ids as confirmed.
    """
    context = _from_pod(labels, annotations)
    scheduler = _construct_pod_ids()
    if scheduler is not None:
        context = {**scheduler, "launcher": LAUNCHER_EXECUTOR}
        return context
    untrusted = [key for key in (*_TEXT_IDS, *_INT_IDS) if key in context]
    if str(labels.get("kubernetes_pod_operator", "")).lower() == "true":
        context["launcher"] = LAUNCHER_KPO
        running = running_task_ids()
        if running is not None and _labels_name(labels, running):
            context.update((key, running[key]) for key in (*_TEXT_IDS, *_INT_IDS) if key in running)
            untrusted = [key for key in untrusted if key not in running]
        else:
            untrusted.append("launcher")
    elif str(labels.get("kubernetes_executor", "")).lower() == "true":
        context["launcher"] = LAUNCHER_EXECUTOR
        untrusted.append("launcher")
    else:
        context["launcher"] = LAUNCHER_UNKNOWN
    if untrusted and not trust_pod:
        context["untrusted"] = untrusted
    return context


def _from_pod(labels: Mapping[str, Any], annotations: Mapping[str, Any]) -> dict[str, Any]:
    """The ids as the pod states them: annotations (verbatim) before labels (sanitized)."""
    context: dict[str, Any] = {}
    for key in _TEXT_IDS:
        for source in (annotations, labels):
            value = source.get(key)
            if isinstance(value, str) and value:
                context[key] = value
                break
    for key in _INT_IDS:
        for source in (annotations, labels):
            raw = source.get(key)
            number = _as_int(raw) if isinstance(raw, str) else None
            if number is not None:
                context[key] = number
                break
    return context


def _construct_pod_ids() -> dict[str, Any] | None:
    """The ids the scheduler passed to ``PodGenerator.construct_pod``, when the hook runs inside it.

    The frame is recognised by its code object, compared with the loaded provider's own function (a
    function of the same name elsewhere is not it). In a process that shows any mark of running DAG code
    (:func:`in_task_process`) a ``construct_pod`` call is DAG code's, not the scheduler's: ignored.
    """
    provider = sys.modules.get(_PROVIDER_POD_GENERATOR)
    generator = getattr(provider, "PodGenerator", None)
    code = getattr(getattr(generator, "construct_pod", None), "__code__", None)
    if code is None:
        return None
    frame = _frame_running(code)
    if frame is None or in_task_process():
        return None
    args = frame.f_locals
    ids: dict[str, Any] = {}
    for key in _TEXT_IDS:
        value = args.get(key)
        if isinstance(value, str) and value:
            ids[key] = value
    for key in _INT_IDS:
        value = args.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and (key != "map_index" or value >= 0):
            ids[key] = value
    return ids if "dag_id" in ids and "task_id" in ids else None


def _frame_running(code: CodeType) -> FrameType | None:
    """The nearest frame on this thread's stack (its caller's and up) executing ``code``, if any."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None and frame.f_code is not code:
        frame = frame.f_back
    return frame


def scheduler_executor() -> tuple[Any, dict[str, Any]] | None:
    """The Airflow executor building the pod being judged, and the ids the scheduler passed for it, when
    the hook runs inside the scheduler's ``PodGenerator.construct_pod`` (:func:`_construct_pod_ids`).

    The executor is the nearest caller frame's ``self`` that is an instance of the loaded
    ``airflow.executors.base_executor.BaseExecutor`` (the KubernetesExecutor's ``_create_pods_*``
    methods call the code that builds the pod). ``None`` anywhere else: tools, tasks, DAG code.
    """
    ids = _construct_pod_ids()
    base = getattr(sys.modules.get(_BASE_EXECUTOR), "BaseExecutor", None)
    if ids is None or not isinstance(base, type):
        return None
    frame = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self") if "self" in frame.f_code.co_varnames else None
        if isinstance(candidate, base):
            return candidate, ids
        frame = frame.f_back  # type: ignore[assignment]
    return None


def describe(context: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The ids worth naming in an error or log line, in a stable order, escaped: an id holding a line
    break (annotations are verbatim) must not start a forged line in the log."""
    return tuple((key, escape(str(context[key]))) for key in (*_TEXT_IDS, *_INT_IDS) if key in context)


def escape(text: str, limit: int = 256) -> str:
    """``text`` fit for one log line: control characters escaped (``\\n``), at most ``limit`` characters."""
    if text.isprintable() and len(text) <= limit:
        return text
    out = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return out if len(out) <= limit else out[:limit] + "..."


# -- the task running in this process ------------------------------------------------------------------


def in_task_process() -> bool:
    """True when this process shows a mark of running DAG code: a task context is set, the task runner's
    ``SUPERVISOR_COMMS`` is set (task, DAG parsing, callback and triggerer processes), or the task runner's
    ``AIRFLOW_CTX_*`` variables are in the environment (a task, or a process it started).

    A cheap raising of the bar, not a boundary: DAG code in this process can erase every one of these
    marks. The scheduler shows none of them (tests/airflow/test_kube_e2e.py records its hook calls).
    """
    if "airflow" not in sys.modules:
        return False
    if _current_task_context() is not None:
        return True
    runner = sys.modules.get(_TASK_RUNNER)
    if getattr(runner, "SUPERVISOR_COMMS", None) is not None:
        return True
    return any(key.startswith(_TASK_ENV_PREFIX) for key in os.environ)


def parsing_in_dag_processor() -> bool:
    """True when this thread runs inside the DAG processor's ``_parse_file`` (recognised by its code object,
    like ``construct_pod`` above) and no task runs in this process.

    :func:`in_task_process` cannot tell the two apart: the DAG processor's parsing child sets
    ``SUPERVISOR_COMMS`` too. A task re-parsing its DAG (the task runner's ``parse``), the scheduler and
    ``airflow dags`` commands never have ``_parse_file`` on their stack; a task context or the task
    runner's ``AIRFLOW_CTX_*`` variables mark a task. Imports nothing; DAG code can fool it (a guardrail).
    """
    processor = sys.modules.get(_DAG_PROCESSOR)
    code = getattr(getattr(processor, "_parse_file", None), "__code__", None)
    if code is None:
        return False
    if _frame_running(code) is None or _current_task_context() is not None:
        return False
    return not any(key.startswith(_TASK_ENV_PREFIX) for key in os.environ)


def _current_task_context() -> Any | None:
    """Airflow's current task context (``get_current_context()``), or ``None``: imports nothing, never raises."""
    module = sys.modules.get(_CONTEXT_MODULE)
    getter = getattr(module, "get_current_context", None)
    if not callable(getter):
        return None
    try:
        return getter()
    except Exception:  # no task is running here (RuntimeError), or an Airflow we do not know
        return None


def running_task_ids() -> dict[str, Any] | None:
    """The ids of the Airflow task this process is executing right now, or ``None``.

    Read from Airflow's current task context (``airflow.sdk.get_current_context()``, which the task
    runner sets around ``execute()``), only when Airflow is already loaded in this process: it imports
    nothing and never raises.
    """
    if "airflow" not in sys.modules:
        return None
    task_context = _current_task_context()
    if task_context is None:
        return None
    try:
        return _ids_of(task_context)
    except Exception:  # pragma: no cover - a context shaped unlike Airflow's must not fail a pod
        return None


def _ids_of(task_context: Any) -> dict[str, Any] | None:
    if not isinstance(task_context, Mapping):
        return None
    ti = task_context.get("ti") or task_context.get("task_instance")
    ids: dict[str, Any] = {}
    run_id = task_context.get("run_id") or getattr(ti, "run_id", None)
    for key, value in (
        ("dag_id", getattr(ti, "dag_id", None)),
        ("task_id", getattr(ti, "task_id", None)),
        ("run_id", run_id),
    ):
        if isinstance(value, str) and value:
            ids[key] = value
    for key in _INT_IDS:
        value = getattr(ti, key, None)
        if isinstance(value, int) and not isinstance(value, bool):
            ids[key] = value
    if "dag_id" not in ids or "task_id" not in ids:
        return None
    return ids


def _labels_name(labels: Mapping[str, Any], running: Mapping[str, Any]) -> bool:
    """True when the pod's labels are those the operator derives from the running task's ids.

    ``dag_id`` and ``task_id`` labels must be present and match; ``run_id``, ``try_number`` and
    ``map_index`` must match where the pod carries them (the operator omits ``map_index`` below 0).
    """
    sanitize = _label_sanitizer()
    for key in ("dag_id", "task_id"):
        if labels.get(key) != sanitize(running[key]):
            return False
    if "run_id" in labels and ("run_id" not in running or labels["run_id"] != sanitize(running["run_id"])):
        return False
    for key in _INT_IDS:
        if key not in labels:
            continue
        label = labels[key]
        number = _as_int(label) if isinstance(label, str) else None
        if number is None or number != running.get(key):
            return False
    return True


def _label_sanitizer() -> Callable[[str], str]:
    """The provider's ``make_safe_label_value`` when the provider is loaded, else :func:`safe_label_value`."""
    provider = sys.modules.get(_PROVIDER_POD_GENERATOR)
    function = getattr(provider, "make_safe_label_value", None)
    if callable(function):

        def provider_sanitize(value: str) -> str:
            try:
                return str(function(value))
            except Exception:  # pragma: no cover - fall back to our copy of the same rule
                return safe_label_value(value)

        return provider_sanitize
    return safe_label_value


def safe_label_value(value: str) -> str:
    """The label value the cncf.kubernetes provider writes for ``value`` (its ``make_safe_label_value``).

    Characters a label value may not hold are dropped (and leading/trailing non-alphanumerics); if that
    changed anything or the result is longer than 63 characters, it is cut to 53 and suffixed with ``-``
    and the first 9 hex digits of the MD5 of the original.
    """
    safe = _UNSAFE_LABEL_CHARS.sub("", value)
    if len(safe) > _MAX_LABEL_LEN or safe != value:
        digest = hashlib.md5(value.encode(), usedforsecurity=False).hexdigest()[:9]
        safe = safe[: _MAX_LABEL_LEN - len(digest) - 1] + "-" + digest
    return safe
