"""Pods and DAGs through the real hook (``MutationHook``) against a test OPA, with results to assert on.

A pod goes through :meth:`MutationHook.evaluate`, the code path of the hook Airflow calls: the same
request, the same decision parsing, the same atomic patching and validation, the same audit annotation.
The pod given is never modified; ``PodResult.pod`` is the pod Airflow would send to Kubernetes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._pod_codec import pod_from_json
from ..config import Settings
from ..errors import Message, OpaMutationError, PodDenied
from ..hook import MutationHook, Outcome

if TYPE_CHECKING:
    from ._server import OpaServer


@dataclass(frozen=True)
class PodResult:
    """What the policies did to one pod."""

    #: The pod after the hook: patched when the decision changed it (or annotated: exemptions applied),
    #: else the pod given (unchanged).
    pod: Any
    outcome: Outcome = field(repr=False)

    @property
    def denied(self) -> bool:
        return isinstance(self.outcome.error, PodDenied)

    @property
    def error(self) -> OpaMutationError | None:
        """Why the hook would raise: ``PodDenied``, or OPA/patch failures (``OpaUnavailable``, ...)."""
        return self.outcome.error

    @property
    def changed(self) -> bool:
        return self.outcome.changed and not self.denied

    @property
    def deny_messages(self) -> tuple[Message, ...]:
        decision = self.outcome.decision
        return decision.deny if decision else ()

    @property
    def warn_messages(self) -> tuple[Message, ...]:
        decision = self.outcome.decision
        return decision.warn if decision else ()

    @property
    def deny(self) -> list[str]:
        """The deny messages' texts (``deny_messages`` has the policy of each)."""
        return [message.msg for message in self.deny_messages]

    @property
    def warn(self) -> list[str]:
        return [message.msg for message in self.warn_messages]

    @property
    def ops(self) -> list[dict[str, Any]]:
        """The decision's RFC 6902 ops, each with the ``policy`` that asked for it."""
        decision = self.outcome.decision
        return [{**op.op, "policy": op.policy} for op in decision.patch] if decision else []

    @property
    def policies(self) -> list[str]:
        """The policies whose ops the decision carries."""
        decision = self.outcome.decision
        return list(decision.policies) if decision else []

    @property
    def document(self) -> dict[str, Any] | None:
        """The pod after the hook as Kubernetes JSON (camelCase keys, no nulls)."""
        return self.outcome.after if not self.denied else self.outcome.before

    @property
    def airflow(self) -> dict[str, Any]:
        """``input.airflow`` as OPA saw it: the task's ids and the launcher, read from the pod."""
        return self.outcome.airflow

    def diff(self) -> str:
        """A unified diff of the pod as JSON, before and after the policies."""
        return self.outcome.diff()


class PodEvaluationError(AssertionError):
    """The hook could not evaluate a pod for another reason than a deny (OPA failed, a patch was rejected)."""


@dataclass
class PolicyRunner:
    """Runs pods (and DAGs' tasks) through the hook, against one OPA."""

    server: OpaServer
    settings: Settings
    _hook: MutationHook | None = field(default=None, repr=False)

    @classmethod
    def for_server(cls, server: OpaServer, **settings: Any) -> PolicyRunner:
        """Settings pointing at ``server``; ``settings`` override the others (``mode``, ``protected_labels``...)."""
        return cls(server, Settings(url=server.url, timeout=10.0, **settings))

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def hook(self) -> MutationHook:
        if self._hook is None:
            # A test stands in for Airflow, like the command line: the ids the pod carries are the ones the
            # test means, so exemptions and matchers keyed on them apply (docs/threat-model.md).
            self._hook = MutationHook(self.settings, trust_pod_ids=True)
        return self._hook

    def with_settings(self, **settings: Any) -> PolicyRunner:
        """The same OPA with other hook settings, e.g. ``protected_labels=("team",)``."""
        return PolicyRunner(self.server, dataclasses.replace(self.settings, **settings))

    def close(self) -> None:
        if self._hook is not None:
            self._hook.close()
            self._hook = None

    def run_pod(self, pod: Any, *, raise_errors: bool = True) -> PodResult:
        """The hook's verdict on ``pod`` (a ``V1Pod``, or a Kubernetes JSON/dict pod): never modifies it.

        A deny is a result (``result.denied``); any other failure (OPA failing, a patch the hook rejects)
        raises :class:`PodEvaluationError` unless ``raise_errors`` is false.
        """
        if isinstance(pod, Mapping):
            pod = pod_from_json(dict(pod))
        return self.result(pod, self.hook.evaluate(pod), raise_errors=raise_errors)

    def result(self, pod: Any, outcome: Outcome, *, raise_errors: bool = True) -> PodResult:
        error = outcome.error
        if raise_errors and error is not None and not isinstance(error, PodDenied):
            raise PodEvaluationError(f"{type(error).__name__}: {error}")
        swapped = (outcome.changed or outcome.annotated) and error is None and outcome.new_pod is not None
        after = outcome.new_pod if swapped else pod
        return PodResult(after, outcome)

    def run_dag(
        self,
        dag: Any,
        *,
        launcher: str = "both",
        pod_template_file: str | Path | None = None,
        max_map: int = 32,
        raise_errors: bool = True,
    ) -> TaskResults:
        """Every pod a DAG's tasks would launch, built by Airflow itself, through the hook (needs Airflow).

        ``dag``: a ``DAG`` object, or a DAG file or folder (loaded with Airflow's ``DagBag``; an import
        error fails). ``launcher``: ``kpo`` (KubernetesPodOperator pods), ``executor`` (KubernetesExecutor
        worker pods, from ``pod_template_file`` and each task's ``executor_config``) or ``both``.
        """
        from ._dags import run_dag

        return run_dag(
            self,
            dag,
            launcher=launcher,
            pod_template_file=pod_template_file,
            max_map=max_map,
            raise_errors=raise_errors,
        )


@dataclass(frozen=True)
class TaskResult:
    """One pod one task would launch, and what the policies did to it (``None`` when it was not built)."""

    dag_id: str
    task_id: str
    #: ``kubernetes_pod_operator`` or ``kubernetes_executor``
    launcher: str
    map_index: int
    result: PodResult | None
    #: Why no pod was built (a mapped task over XCom is skipped; a build failure is an error).
    error: str | None = None
    notes: tuple[str, ...] = ()


class TaskResults(list[TaskResult]):
    """The pods of a DAG's tasks, in task order; helpers to pick them."""

    def get(self, task_id: str, launcher: str | None = None, map_index: int | None = None) -> PodResult:
        """The result of the one pod of ``task_id`` (narrowed by launcher and map index)."""
        found = [
            row
            for row in self
            if row.task_id == task_id
            and (launcher is None or row.launcher == launcher)
            and (map_index is None or row.map_index == map_index)
        ]
        if len(found) != 1:
            raise KeyError(f"{len(found)} pods for task {task_id!r} (launcher={launcher}, map_index={map_index})")
        if found[0].result is None:
            raise KeyError(f"task {task_id!r}: no pod was built ({found[0].error})")
        return found[0].result

    def denied(self) -> list[TaskResult]:
        return [row for row in self if row.result is not None and row.result.denied]

    def warned(self) -> list[TaskResult]:
        return [row for row in self if row.result is not None and row.result.warn]
