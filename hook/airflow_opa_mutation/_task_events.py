"""A denial where Airflow's users look: an entry in the event log of the task try whose pod was refused.

On the KubernetesExecutor path the hook runs in the scheduler, inside ``PodGenerator.construct_pod``. The
cncf.kubernetes provider turns what the hook raises into a ``PodMutationHookException`` without a message
and fails the task before it runs, so the reason would reach only the scheduler's log. The hook writes it
into the metadata DB's ``log`` table instead (Airflow's ``Log`` model, keyed by the task try: dag_id,
task_id, run_id, map_index, try_number), which the UI's Audit Log tab and ``GET /api/v2/eventLogs`` show
to whoever may read the DAG's audit log.

Not through ``BaseExecutor.log_task_event``, Airflow's channel for executor events: in Airflow 3.3.2 with
SQLAlchemy 2.1 the scheduler saves that buffer with ``bulk_save_objects`` over a generator, which inserts
``DEFAULT VALUES`` and fails ("NOT NULL constraint failed: log.event"), losing every entry (seen with the
real scheduler in tests/airflow/test_kube_e2e.py). The hook writes the row itself, in its own short
transaction on a session of its own (``create_session(scoped=False)``: never the scheduler's).

Recorded only where the ids are the scheduler's own (``_airflow_context.scheduler_executor``: an executor
is building the pod, with the ids it passed to ``construct_pod``): a pod's labels are the DAG author's to
write and must not put entries in another task's log. The entry holds the policies' messages (redacted,
escaped, bounded), the pod's name and the request and decision ids; never the pod. A failure to record
never changes the decision: it is logged as a warning.
"""

from __future__ import annotations

import logging

from ._airflow_context import escape, scheduler_executor
from ._redact import redact_text
from .errors import PodDenied

log = logging.getLogger("airflow_opa_mutation")

#: The event names (Airflow's ``log.event`` holds at most 60 characters).
EVENT_DENIED = "opa_mutation.denied"
EVENT_WOULD_DENY = "opa_mutation.would_deny"

#: The first line of an entry; then one line per reason, ``[policy] message;`` (the last without ``;``);
#: then ``(pod <namespace>/<name>, decision <path>, request_uid <uid>[, decision_id <id>])``.
DENIED_HEAD = "denied by policy:"
WOULD_DENY_HEAD = "would be denied by policy (dry-run: the pod went on):"

#: At most this many messages, each at most MAX_MESSAGE characters: the entry stays small whatever the
#: policies say (``log.extra`` is unbounded text, and every UI view of the audit log loads it).
MAX_MESSAGES = 50
MAX_MESSAGE = 1024


def record(error: PodDenied, *, dry_run: bool, request_uid: str, decision_id: str | None) -> bool:
    """Add the denial to the event log of the task try whose pod the scheduler is building; True when it
    did. Nothing happens outside the scheduler's ``construct_pod``, and a failure is logged, not raised."""
    try:
        found = scheduler_executor()
        if found is None:
            return False
        _, ids = found
        if "run_id" not in ids or "try_number" not in ids:
            return False
        from airflow.models.log import Log
        from airflow.models.taskinstancekey import TaskInstanceKey
        from airflow.utils.session import create_session

        key = TaskInstanceKey(ids["dag_id"], ids["task_id"], ids["run_id"], ids["try_number"], ids.get("map_index", -1))
        event = EVENT_WOULD_DENY if dry_run else EVENT_DENIED
        entry = Log(event=event, task_instance=key, extra=_extra(error, dry_run, request_uid, decision_id))
        with create_session(scoped=False) as session:
            session.add(entry)
        return True
    except Exception as exc:  # the event log is a courtesy: the pod's fate is already decided
        log.warning("could not record the denial in the task's event log: %s", escape(f"{type(exc).__name__}: {exc}"))
        return False


def _extra(error: PodDenied, dry_run: bool, request_uid: str, decision_id: str | None) -> str:
    """Plain text, one line per reason (``;`` between them), then the pod and the ids in parentheses: the
    UI's Audit Log shows a text ``extra`` as it is, line breaks as spaces, so it reads like ``PodDenied``'s
    message (a JSON ``extra`` it collapses to ``{…}``). Every line is escaped: no message can forge one."""
    messages = error.messages[:MAX_MESSAGES]
    lines = [WOULD_DENY_HEAD if dry_run else DENIED_HEAD]
    reasons = []
    for m in messages:
        text = escape(redact_text(m.msg), limit=MAX_MESSAGE)
        reasons.append(f"[{escape(m.policy)}] {text}" if m.policy else text)
    if len(error.messages) > len(messages):
        reasons.append(f"... and {len(error.messages) - len(messages)} more")
    lines += [reason + ";" for reason in reasons[:-1]] + reasons[-1:]
    pod = error.pod
    where = [f"pod {pod.namespace or '-'}/{pod.name or '-'}"] if pod is not None else []
    where += [f"decision {escape(error.decision_path or '-')}", f"request_uid {request_uid}"]
    if decision_id:
        where.append(f"decision_id {escape(decision_id)}")
    lines.append(f"({', '.join(where)})")
    return "\n".join(lines)
