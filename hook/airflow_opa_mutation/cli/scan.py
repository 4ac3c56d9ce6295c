"""``scan DAGS_FOLDER``: the pod every task would launch, built by Airflow itself, through the policies.

Needs the ``airflow`` extra. DAGs are loaded with Airflow's own ``DagBag`` (a DAG file that fails to import
is reported, not fatal). For each task:

- **KubernetesPodOperator** (``--launcher kpo``): the operator's own ``build_pod_request_obj(context,
  dry_run=True)`` builds the pod, with the process-wide hook swapped for one that evaluates in dry-run and
  records (``_task_pods``, shared with the testing plugin and the parse-time check): Airflow's whole hook
  chain runs, nothing is raised or mutated. A mapped operator gives one pod per map index of its literal
  ``expand()`` arguments (up to ``--max-map``); one mapped over an upstream's XCom is reported as skipped.
- **KubernetesExecutor** (``--launcher executor``): the worker pod, the way the executor builds it —
  ``PodGenerator.construct_pod(..., with_mutation_hook=False)`` from the pod template file (the task's
  ``executor_config["pod_template_file"]``, else ``--pod-template-file``, else ``[kubernetes_executor]
  pod_template_file``) and the task's ``executor_config["pod_override"]`` — then ``MutationHook.evaluate``
  in dry-run. Tasks assigned to another executor (``executor=``) are left out; a mapped task's worker pod
  is built for map index 0 (the index only changes its labels).

Exit status: 0 no task would be denied and every pod was built and evaluated, 1 a task would be denied
or a pod could not be built or evaluated, 2 usage or runtime error (Airflow not installed, OPA not
startable). Import errors are reported and do not change the exit status.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from .._task_pods import (
    LAUNCHER_EXECUTOR,
    LAUNCHER_KPO,
    SCAN_RUN_ID,
    RecordingHook,
    TaskPod,
    kpo_pods,
    recording,
)
from .._task_pods import is_kpo as _is_kpo
from .._task_pods import is_mapped as _is_mapped
from ..hook import MutationHook
from ._errors import EXIT_FAILED, EXIT_OK, CliError, handle_errors
from ._extras import install_hint
from ._opa_provider import OpaProvider, load_config_file, opa_options
from ._outcomes import messages_json, outcome_json, verdict
from ._output import JSON_SCHEMA_VERSION, Output, emit_document, make_output, maybe_progress, output_options_with

#: The worker pod template when none is configured: what the provider's own example template boils down to.
MINIMAL_TEMPLATE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "placeholder-name"},
    "spec": {"restartPolicy": "Never", "containers": [{"name": "base", "image": "apache/airflow"}]},
}


@dataclass
class ExecutorSetup:
    template_file: str | None
    namespace: str
    image: str | None


def executor_setup(pod_template_file: Path | None) -> ExecutorSetup:
    template: str | None = str(pod_template_file) if pod_template_file else None
    namespace, image = "default", None
    try:
        from airflow.providers.cncf.kubernetes.kube_config import KubeConfig

        kube = KubeConfig()
        template = template or kube.pod_template_file or None
        namespace = kube.kube_namespace or namespace
        image = kube.kube_image
    except Exception:  # no [kubernetes_executor] section worth reading: the defaults above
        pass
    return ExecutorSetup(template, namespace, image)


def executor_pod(task: Any, setup: ExecutorSetup, hook: MutationHook) -> TaskPod:
    from airflow.providers.cncf.kubernetes.kubernetes_helper_functions import create_unique_id
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator

    map_index = 0 if _is_mapped(task) else -1
    row = TaskPod(task.dag_id, task.task_id, LAUNCHER_EXECUTOR, map_index)
    executor_config = getattr(task, "executor_config", None) or {}
    template = executor_config.get("pod_template_file") if isinstance(executor_config, dict) else None
    template = template or setup.template_file
    try:
        if template:
            base = PodGenerator.deserialize_model_file(str(template))
        else:
            base = PodGenerator.deserialize_model_dict(MINIMAL_TEMPLATE)
            row.notes.append("no pod_template_file configured: a minimal template (give --pod-template-file)")
        row.pod = PodGenerator.construct_pod(
            dag_id=task.dag_id,
            task_id=task.task_id,
            pod_id=create_unique_id(task.dag_id, task.task_id),
            try_number=1,
            kube_image=setup.image or base.spec.containers[0].image,
            date=None,
            args=["airflow", "tasks", "run", task.dag_id, task.task_id, SCAN_RUN_ID],
            pod_override_object=PodGenerator.from_obj(executor_config),
            base_worker_pod=base,
            namespace=setup.namespace,
            scheduler_job_id="0",
            run_id=SCAN_RUN_ID,
            map_index=map_index,
            with_mutation_hook=False,
        )
    except Exception as exc:
        row.status, row.error = "error", f"cannot build the worker pod: {type(exc).__name__}: {exc}"
        return row
    row.outcome = hook.evaluate(row.pod, mode="dry-run")
    return row


def _runs_on_kubernetes_executor(task: Any) -> bool:
    executor = getattr(task, "executor", None)
    return not executor or "KubernetesExecutor" in str(executor)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Everything written to stdout meanwhile goes to stderr: DAG files that print, and Airflow's log handler
    (bound to the process's stdout when logging was configured), must not spoil ``--output json``."""
    sys.stdout.flush()
    if sys.__stdout__ is not None:
        sys.__stdout__.flush()
    saved: int | None = None
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no real file descriptors (an embedding host): the Python-level redirect still holds
        saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if saved is not None:
            if sys.__stdout__ is not None:
                sys.__stdout__.flush()
            os.dup2(saved, 1)
            os.close(saved)


def load_dagbag(folder: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder), bundle_path=folder if folder.is_dir() else None)


@click.command()
@click.argument("dags_folder", type=click.Path(exists=True, path_type=Path))
@opa_options
@click.option(
    "--launcher",
    type=click.Choice(["executor", "kpo", "both"]),
    default="both",
    show_default=True,
    help="Which pods: KubernetesExecutor worker pods, KubernetesPodOperator pods, or both.",
)
@click.option(
    "--pod-template-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The executor's worker pod template (default: [kubernetes_executor] pod_template_file).",
)
@click.option("--max-map", default=32, show_default=True, help="Map indexes scanned per mapped operator.")
@output_options_with(
    ("text", "json", "html", "junit", "sarif"),
    " html: one self-contained page for reviewers; junit: JUnit XML; sarif: SARIF 2.1.0 (for CI systems).",
)
@click.option(
    "--report",
    "report_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the --output document (json, html, junit or sarif) to this file; stdout then gets the text.",
)
@handle_errors("scan")
def scan(  # noqa: PLR0917 - one parameter per click option
    dags_folder: Path,
    url: str | None,
    policies: Path | None,
    config_file: Path | None,
    launcher: str,
    pod_template_file: Path | None,
    max_map: int,
    output_format: str,
    color: str,
    report_file: Path | None,
) -> None:
    """Build the pod of every task in DAGS_FOLDER with Airflow itself and evaluate it in dry-run.

    Prints per task: dag, task, launcher, ops, policies, warnings and whether it would be denied. DAG files
    that fail to import are listed and do not stop the scan.

    --output html|junit|sarif writes a report (to stdout, or to --report FILE while the text goes to stdout):
    html is one self-contained page (verdict per DAG and task, per-policy counts, each mutation as a redacted
    diff, the exemptions used, a filter); junit has a test case per task pod (denied: a failure); sarif a
    result per deny (error) and warn (warning) message, located in the DAG file.

    Exit status: 0 nothing would be denied, 1 a task would be denied or its pod could not be built or
    evaluated, 2 usage or runtime error.
    """
    if report_file is not None and output_format == "text":
        raise click.BadOptionUsage("report_file", "--report needs --output json, html, junit or sarif")
    document_format = output_format
    if report_file is not None:  # the document goes to the file, the text table to stdout
        output_format = "text"
    output = make_output(output_format, color)
    try:
        import airflow
        import airflow.providers.cncf.kubernetes  # noqa: F401
    except ImportError as exc:
        raise CliError(  # one line, like every missing extra (_extras)
            f"scan needs Airflow and the cncf.kubernetes provider ({exc}): {install_hint('airflow,cli')}"
        ) from None
    config = load_config_file(config_file) if config_file is not None else None
    with OpaProvider(url=url, policies=policies, config=config, warn=output.err.print) as provider:
        hook = provider.hook()
        with stdout_to_stderr():
            dagbag = load_dagbag(dags_folder)
        tasks = [task for dag_id in sorted(dagbag.dags) for task in dagbag.dags[dag_id].tasks]
        tasks.sort(key=lambda t: (t.dag_id, t.task_id))
        rows: list[TaskPod] = []
        setup = executor_setup(pod_template_file)
        with (
            recording(hook.settings) as recorder,
            maybe_progress(output, "building and evaluating pods", len(tasks)) as advance,
            stdout_to_stderr(),
        ):
            for task in tasks:
                if launcher in ("kpo", "both") and _is_kpo(task):
                    rows.extend(kpo_pods(task, recorder, max_map))
                if launcher in ("executor", "both") and _runs_on_kubernetes_executor(task):
                    rows.append(executor_pod(task, setup, hook))
                advance()
    for row in rows:
        if row.outcome is not None and not row.status:
            row.status = verdict(row.outcome)
    import_errors = [{"file": str(name), "error": str(error)} for name, error in sorted(dagbag.import_errors.items())]
    code = EXIT_FAILED if any(row.failing for row in rows) else EXIT_OK
    members = {
        "dags_folder": str(dags_folder),
        "dags": sorted(dagbag.dags),
        "import_errors": import_errors,
        "tasks": [_row_json(row) for row in rows],
        "summary": {
            status: sum(1 for r in rows if r.status == status)
            for status in ("mutated", "unchanged", "denied", "failed", "error", "skipped")
        },
    }
    if output.json:
        emit_document("scan", code, members)
        raise click.exceptions.Exit(code)
    if document_format != "text":
        if document_format != "json":  # the reports show the exemptions a decision applied, where it says
            members["tasks"] = [_with_exemptions(task, row) for task, row in zip(members["tasks"], rows, strict=True)]
        _write_report(document_format, report_file, code, members, _dag_files(dagbag))
        if report_file is None:
            raise click.exceptions.Exit(code)
    _render(output, dags_folder, rows, import_errors, len(dagbag.dags))
    raise click.exceptions.Exit(code)


def _with_exemptions(task: dict[str, Any], row: TaskPod) -> dict[str, Any]:
    decision = row.outcome.decision if row.outcome else None
    exemptions = getattr(decision, "exemptions", None)  # decisions that carry them (policies' exemptions)
    return {**task, "exemptions": list(exemptions)} if exemptions and "exemptions" not in task else task


def _dag_files(dagbag: Any) -> dict[str, str]:
    return {dag_id: str(dag.fileloc) for dag_id, dag in dagbag.dags.items() if getattr(dag, "fileloc", None)}


def _write_report(
    fmt: str, report_file: Path | None, code: int, members: dict[str, Any], dag_files: dict[str, str]
) -> None:
    """The json, html, junit or sarif document of the scan, to ``report_file`` or stdout."""
    from ._reports import render

    document = {"schema_version": JSON_SCHEMA_VERSION, "command": "scan", "exit_code": code, **members}
    text = render(fmt, document, dag_files)
    if report_file is None:
        click.echo(text, nl=False)
        return
    try:
        report_file.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write the report {report_file}: {exc.strerror or exc}") from None


def _row_json(row: TaskPod) -> dict[str, Any]:
    outcome = row.outcome
    decision = outcome.decision if outcome else None
    return {
        "dag_id": row.dag_id,
        "task_id": row.task_id,
        "launcher": row.launcher,
        "map_index": row.map_index,
        "status": row.status,
        "ops": len(decision.patch) if decision else 0,
        "policies": list(decision.policies) if decision else [],
        "warn": messages_json(decision.warn) if decision else [],
        "deny": messages_json(decision.deny) if decision else [],
        "error": row.error or (str(outcome.error) if outcome and outcome.error and row.status == "failed" else None),
        "notes": row.notes,
        "outcome": outcome_json(outcome) if outcome else None,
    }


_STYLES = {
    "mutated": "green",
    "unchanged": "",
    "denied": "bold red",
    "failed": "bold red",
    "error": "bold red",
    "skipped": "dim",
}


def _render(output: Output, folder: Path, rows: list[TaskPod], import_errors: list[dict[str, str]], dags: int) -> None:
    console = output.console
    table = Table(title=f"pods of the tasks in {folder}", title_justify="left")
    for column in ("dag", "task", "launcher", "map", "ops", "policies", "warn", "denied"):
        table.add_column(column)
    for row in rows:
        decision = row.outcome.decision if row.outcome else None
        ops = str(len(decision.patch)) if decision else "-"
        policies = ", ".join(decision.policies) if decision else "-"
        warn = "\n".join(str(m) for m in decision.warn) if decision else ""
        if row.status == "denied" and decision is not None:
            denied = Text("\n".join(str(m) for m in decision.deny), style="bold red")
        elif row.status in ("failed", "error", "skipped"):
            reason = row.error or (str(row.outcome.error) if row.outcome and row.outcome.error else "")
            reason = reason or "; ".join(row.notes)
            denied = Text(f"{row.status}: {reason}", style=_STYLES[row.status])
        else:
            denied = Text("no", style="green")
        launcher = "kpo" if row.launcher == LAUNCHER_KPO else "executor"
        table.add_row(
            row.dag_id,
            row.task_id,
            launcher,
            str(row.map_index) if row.map_index >= 0 else "",
            ops,
            policies,
            Text(warn, style="yellow"),
            denied,
        )
    console.print(table)
    notes = [(row, note) for row in rows for note in row.notes if row.status != "skipped"]
    seen: set[str] = set()
    for _, note in notes:
        if note not in seen:
            seen.add(note)
            console.print(Text(f"note: {note}", style="dim"))
    if import_errors:
        console.print()
        console.print(Text(f"{len(import_errors)} DAG file(s) failed to import (not scanned):", style="bold yellow"))
        for entry in import_errors:
            last = [line for line in entry["error"].strip().splitlines() if line.strip()][-1:]
            console.print(Text(f"  {entry['file']}: {last[0].strip() if last else ''}", style="yellow"))
    n_denied = sum(1 for r in rows if r.status == "denied")
    broken = sum(1 for r in rows if r.status in ("failed", "error"))
    console.print()
    summary = f"{dags} DAG(s), {len(rows)} pod(s): {n_denied} would be denied, {broken} could not be built or evaluated"
    console.print(Text(summary, style="bold red" if n_denied or broken else "bold green"))


__all__ = ["RecordingHook", "TaskPod", "scan"]
