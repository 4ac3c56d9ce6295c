"""The pods a task would launch, built by Airflow itself: shared by ``scan``, the testing plugin and the
parse-time check (``_parse_check``). Imports nothing of Airflow or the command line until called.

KubernetesPodOperator: the operator's own ``build_pod_request_obj(context, dry_run=True)`` builds the pod,
with a minimal task context so the pod carries the task-instance labels (``dag_id``, ``task_id``,
``run_id``, ``try_number``, ``map_index``) the hook reads. That method calls Airflow's
``pod_mutation_hook`` itself; meanwhile the process-wide hook is swapped (:func:`recording`) for one that
evaluates in dry-run and records the outcome, so Airflow's whole hook chain runs and nothing is raised or
mutated. A mapped operator is expanded over its literal ``expand()`` arguments (one pod per map index, up
to ``max_map``); one mapped over an upstream's XCom is skipped (its arguments exist only at run time).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from .config import Settings
from .hook import MutationHook, Outcome

SCAN_RUN_ID = "scan__2026-01-01T00:00:00+00:00"
LAUNCHER_KPO = "kubernetes_pod_operator"
LAUNCHER_EXECUTOR = "kubernetes_executor"


@dataclass
class TaskPod:
    """One pod a task would launch (or why it could not be built), and what the policies decide."""

    dag_id: str
    task_id: str
    launcher: str
    map_index: int = -1
    pod: Any = None
    outcome: Outcome | None = None
    status: str = ""  # mutated, unchanged, denied, failed (evaluation), error (build), skipped
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def failing(self) -> bool:
        return self.status in ("denied", "failed", "error")


class RecordingHook(MutationHook):
    """The process-wide hook during a scan: evaluates in dry-run and records; never mutates nor raises."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, trust_pod_ids=True)
        self.outcomes: list[Outcome] = []

    def __call__(self, pod: Any) -> None:
        self.outcomes.append(self.evaluate(pod, mode="dry-run"))


@contextlib.contextmanager
def recording(settings: Settings, recorder_class: type[RecordingHook] = RecordingHook) -> Iterator[RecordingHook]:
    """Airflow's process-wide hook swapped for a recorder while pods are built (Airflow calls it itself)."""
    from . import hook as hook_module

    recorder = recorder_class(settings)
    with hook_module._default_lock:
        saved, hook_module._default = hook_module._default, recorder
    try:
        yield recorder
    finally:
        with hook_module._default_lock:
            hook_module._default = saved
        recorder.close()


def is_kpo(task: Any) -> bool:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    klass = getattr(task, "operator_class", None) if is_mapped(task) else type(task)
    return isinstance(klass, type) and issubclass(klass, KubernetesPodOperator)


def is_mapped(task: Any) -> bool:
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    return isinstance(task, MappedOperator)


def _map_count(task: Any) -> int | None:
    """How many map indexes a mapped task has when its ``expand()`` arguments are literals, else None."""
    from airflow.sdk.definitions._internal.expandinput import DictOfListsExpandInput, ListOfDictsExpandInput
    from airflow.sdk.definitions.xcom_arg import XComArg

    expand_input = task._get_specified_expand_input()
    if isinstance(expand_input, DictOfListsExpandInput):
        values = list(expand_input.value.values())
        if any(isinstance(v, XComArg) or not hasattr(v, "__len__") for v in values):
            return None
        count = 1
        for value in values:
            count *= len(value)
        return count
    if isinstance(expand_input, ListOfDictsExpandInput):
        value = expand_input.value
        if isinstance(value, XComArg) or any(isinstance(v, XComArg) for v in value):
            return None
        return len(value)
    return None


def _context(task: Any, map_index: int) -> dict[str, Any]:
    """What ``build_pod_request_obj`` reads from a task context: the task instance's ids, the run, the DAG."""
    ti = SimpleNamespace(dag_id=task.dag_id, task_id=task.task_id, map_index=map_index, try_number=1)
    return {"ti": ti, "run_id": SCAN_RUN_ID, "dag": task.dag}


def kpo_pods(task: Any, recorder: RecordingHook, max_map: int) -> list[TaskPod]:
    if not is_mapped(task):
        return [_build_kpo(task, task, -1, recorder)]
    count = _map_count(task)
    if count is None:
        row = TaskPod(task.dag_id, task.task_id, LAUNCHER_KPO, status="skipped")
        row.notes.append("mapped over an upstream task's XCom: its arguments exist only at run time")
        return [row]
    rows = []
    for map_index in range(min(count, max_map)):
        try:
            kwargs, _ = task._expand_mapped_kwargs({"ti": SimpleNamespace(map_index=map_index)})
            operator = task.unmap(kwargs)
        except Exception as exc:
            row = TaskPod(task.dag_id, task.task_id, LAUNCHER_KPO, map_index, status="error")
            row.error = f"cannot expand map index {map_index}: {type(exc).__name__}: {exc}"
            rows.append(row)
            continue
        rows.append(_build_kpo(task, operator, map_index, recorder))
    if count > max_map:
        rows[-1].notes.append(f"{count - max_map} more map index(es) not scanned (--max-map {max_map})")
    return rows


def _build_kpo(task: Any, operator: Any, map_index: int, recorder: RecordingHook) -> TaskPod:
    row = TaskPod(task.dag_id, task.task_id, LAUNCHER_KPO, map_index)
    recorder.outcomes.clear()
    try:
        row.pod = operator.build_pod_request_obj(_context(task, map_index), dry_run=True)
    except Exception as exc:
        row.status, row.error = "error", f"build_pod_request_obj failed: {type(exc).__name__}: {exc}"
        return row
    if recorder.outcomes:
        row.outcome = recorder.outcomes[-1]
    else:  # the hook is not registered with this Airflow: evaluate the built pod the same way
        row.notes.append("airflow_opa_mutation is not registered with Airflow here; evaluated the built pod")
        row.outcome = recorder.evaluate(row.pod, mode="dry-run")
    return row


__all__ = [
    "LAUNCHER_EXECUTOR",
    "LAUNCHER_KPO",
    "SCAN_RUN_ID",
    "RecordingHook",
    "TaskPod",
    "is_kpo",
    "is_mapped",
    "kpo_pods",
    "recording",
]
