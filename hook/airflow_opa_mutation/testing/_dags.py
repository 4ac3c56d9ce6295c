"""A DAG's pods, built by Airflow itself as ``airflow-opa-mutation scan`` builds them, through the hook.

The building is ``_task_pods``' and ``cli/scan.py``'s (one place knows how Airflow builds pods):

- KubernetesPodOperator: ``build_pod_request_obj(context, dry_run=True)`` with the task instance's ids in
  the context; Airflow calls its ``pod_mutation_hook`` itself, and the process-wide hook is swapped meanwhile
  for one that records the outcome without mutating or raising. A mapped operator over literal
  ``expand()`` arguments gives one pod per map index.
- KubernetesExecutor: ``PodGenerator.construct_pod`` from the pod template file and the task's
  ``executor_config`` ``pod_override``.

Unlike ``scan`` (which evaluates in dry-run), each pod is evaluated in the runner's ``mode`` (enforce unless
set otherwise): OPA sees ``input.request.mode`` as production sends it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import _task_pods
from ..cli import scan
from ..hook import Outcome
from ._runner import PodEvaluationError, PolicyRunner, TaskResult, TaskResults


class _Recorder(_task_pods.RecordingHook):
    """scan's recorder, evaluating in the settings' mode instead of dry-run."""

    def evaluate(self, pod: Any, *, mode: str | None = None) -> Outcome:
        return super().evaluate(pod, mode=self.settings.mode)


def _tasks(dag: Any) -> list[Any]:
    if not isinstance(dag, (str, Path)):
        return list(dag.tasks)
    dagbag = scan.load_dagbag(Path(dag))
    if dagbag.import_errors:
        errors = "\n".join(f"{name}: {error}" for name, error in sorted(dagbag.import_errors.items()))
        raise PodEvaluationError(f"DAG files under {dag} failed to import:\n{errors}")
    return [task for dag_id in sorted(dagbag.dags) for task in dagbag.dags[dag_id].tasks]


def run_dag(
    runner: PolicyRunner,
    dag: Any,
    *,
    launcher: str,
    pod_template_file: str | Path | None,
    max_map: int,
    raise_errors: bool,
) -> TaskResults:
    if launcher not in ("kpo", "executor", "both"):
        raise ValueError(f"launcher must be kpo, executor or both, not {launcher!r}")
    tasks = sorted(_tasks(dag), key=lambda t: (t.dag_id, t.task_id))
    setup = scan.executor_setup(Path(pod_template_file) if pod_template_file else None)
    rows: list[_task_pods.TaskPod] = []
    with _task_pods.recording(runner.settings, _Recorder) as recorder:
        for task in tasks:
            if launcher in ("kpo", "both") and _task_pods.is_kpo(task):
                rows.extend(_task_pods.kpo_pods(task, recorder, max_map))
            if launcher in ("executor", "both") and scan._runs_on_kubernetes_executor(task):
                rows.append(scan.executor_pod(task, setup, recorder))
    results = TaskResults()
    for row in rows:
        if raise_errors and row.status == "error":
            raise PodEvaluationError(f"{row.dag_id}.{row.task_id} ({row.launcher}): {row.error}")
        result = None
        if row.outcome is not None:
            result = runner.result(row.pod, row.outcome, raise_errors=raise_errors)
        results.append(
            TaskResult(row.dag_id, row.task_id, row.launcher, row.map_index, result, row.error, tuple(row.notes))
        )
    return results
